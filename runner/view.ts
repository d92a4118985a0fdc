/** Docker-shaped data views of a container (for `inspect` and `ps --json`); no formatting here. */
import { primaryAddress } from './network.js';
import { formatMapping, type PortMapping } from './ports.js';
import type { ContainerRecord } from './state.js';

/** `inspect`'s Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}. */
export function portsView(ports: readonly PortMapping[]): Record<string, { HostIp: string; HostPort: string }[]> {
  const out: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of ports) {
    const key = `${p.containerPort}/${p.protocol}`;
    out[key] ??= [];
    out[key].push({ HostIp: p.hostIP || '0.0.0.0', HostPort: String(p.hostPort) });
  }
  return out;
}

export function networkModeText(rec: ContainerRecord): string {
  const n = rec.config.network;
  if (n.kind === 'cni') return n.network === 'ctnet' ? 'bridge' : n.network;
  if (n.kind === 'container') return `container:${n.container}`;
  return n.kind;
}

export function inspectView(rec: ContainerRecord): Record<string, unknown> {
  const { config: c, state: s } = rec;
  const addr = primaryAddress(s.attachment?.result);
  const iface = (s.attachment?.result.interfaces as { name?: string; mac?: string; sandbox?: string }[] | undefined)?.find(
    (i) => i.sandbox,
  );
  return {
    Id: c.id,
    Name: c.name,
    Created: c.createdAt,
    Image: c.image,
    Path: c.command[0],
    Args: c.command.slice(1),
    State: {
      Status: s.status,
      Running: s.status === 'running',
      Pid: s.status === 'running' ? s.pid : 0,
      ExitCode: s.exitCode ?? 0,
      OOMKilled: s.oomKilled ?? false,
      Error: s.error ?? '',
      StartedAt: s.startedAt ?? '',
      FinishedAt: s.finishedAt ?? '',
    },
    Config: {
      Hostname: c.hostname,
      Env: c.env,
      Cmd: c.command,
      WorkingDir: c.workdir ?? '',
      User: c.user ?? '',
      Tty: c.tty,
      OpenStdin: c.interactive,
    },
    HostConfig: {
      NetworkMode: networkModeText(rec),
      AutoRemove: c.autoRemove,
      Binds: c.volumes.map((v) => `${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`),
      Memory: c.limits.memoryBytes ?? 0,
      NanoCpus: c.limits.cpus ? Math.round(c.limits.cpus * 1e9) : 0,
      PidsLimit: c.limits.pidsLimit ?? 0,
      PortBindings: c.publish,
    },
    NetworkSettings: {
      SandboxKey: s.netnsPath ?? '',
      Ports: portsView(s.ports),
      IPAddress: addr.ip ?? '',
      Gateway: addr.gateway ?? '',
      Networks: s.attachment
        ? {
            [s.attachment.network]: {
              IPAddress: addr.ip ?? '',
              IPPrefixLen: addr.prefix ?? 0,
              Gateway: addr.gateway ?? '',
              MacAddress: iface?.mac ?? '',
              CniResult: s.attachment.result,
            },
          }
        : {},
    },
    Cgroup: s.cgroup ?? null,
  };
}

export function portsText(rec: ContainerRecord): string {
  return rec.state.ports.map(formatMapping).join(', ');
}
