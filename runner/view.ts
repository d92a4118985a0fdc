/** Docker-shaped data views of a container (for `inspect` and `ps --json`); no formatting here. */
import { addressOf } from './network.js';
import { formatMapping, type PortMapping, type PortRequest, publishedBindings } from './ports.js';
import type { ContainerRecord } from './state.js';

/** `inspect`'s Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", …}]}. */
export function portsView(bindings: readonly PortMapping[]): Record<string, { HostIp: string; HostPort: string }[]> {
  const out: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of bindings) {
    const key = `${p.containerPort}/${p.protocol}`;
    out[key] ??= [];
    out[key].push({ HostIp: p.hostIP || '0.0.0.0', HostPort: String(p.hostPort) });
  }
  return out;
}

/** `inspect`'s HostConfig.PortBindings: what was asked for, {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}. */
export function portBindingsView(requests: readonly PortRequest[]): Record<string, { HostIp: string; HostPort: string }[]> {
  const out: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const r of requests) {
    const key = `${r.containerPort}/${r.protocol}`;
    const [lo, hi] = r.hostPorts;
    out[key] ??= [];
    out[key].push({ HostIp: r.hostIP, HostPort: lo === 0 ? '' : lo === hi ? String(lo) : `${lo}-${hi}` });
  }
  return out;
}

/** The host addresses and ports a container answers on (`port`, `ps`, inspect's Ports). */
export function containerBindings(rec: ContainerRecord): PortMapping[] {
  return publishedBindings(rec.state.ports, addressOf(rec.state.attachment?.result, 6).ip !== undefined);
}

export function networkModeText(rec: ContainerRecord): string {
  const n = rec.config.network;
  if (n.kind === 'cni') return n.network === 'ctnet' ? 'bridge' : n.network;
  if (n.kind === 'container') return `container:${n.container}`;
  return n.kind;
}

export function inspectView(rec: ContainerRecord): Record<string, unknown> {
  const { config: c, state: s } = rec;
  const addr = addressOf(s.attachment?.result, 4);
  const addr6 = addressOf(s.attachment?.result, 6);
  // Docker's IPv6 fields, empty strings and 0 on an IPv4-only network.
  const v6 = {
    GlobalIPv6Address: addr6.ip ?? '',
    GlobalIPv6PrefixLen: addr6.prefix ?? 0,
    IPv6Gateway: addr6.gateway ?? '',
  };
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
      PortBindings: portBindingsView(c.publish),
    },
    NetworkSettings: {
      SandboxKey: s.netnsPath ?? '',
      Ports: portsView(containerBindings(rec)),
      IPAddress: addr.ip ?? '',
      IPPrefixLen: addr.prefix ?? 0,
      Gateway: addr.gateway ?? '',
      ...v6,
      MacAddress: iface?.mac ?? '',
      Networks: s.attachment
        ? {
            [s.attachment.network]: {
              IPAddress: addr.ip ?? '',
              IPPrefixLen: addr.prefix ?? 0,
              Gateway: addr.gateway ?? '',
              ...v6,
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
  return containerBindings(rec).map(formatMapping).join(', ');
}
