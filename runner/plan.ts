/**
 * What the helper (ctnet-init) is told to make of a container: its root file system (overlays of the image's
 * layers), its binds (volumes and the /etc files written here), its seccomp filter and device rules.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CniDns } from '../core/index.js';
import type { RunnerContext } from './context.js';
import { hostsFile, resolvConf } from './etc-files.js';
import type { Overlay, RunPlan } from './helper.js';
import { resolveImage } from './images.js';
import { allowedDevices, helperDeviceRule, seccompFilterText } from './isolation.js';
import { primaryAddress } from './network.js';
import { exitFilePath } from './release.js';
import { type ContainerRecord, containerDir } from './state.js';

export function writeEtcFiles(dir: string, rec: ContainerRecord, dns: CniDns | undefined): void {
  const etc = join(dir, 'etc');
  mkdirSync(etc, { recursive: true });
  const hostNet = rec.config.network.kind === 'host';
  const ip = primaryAddress(rec.state.attachment?.result).ip;
  let hostResolv = '';
  try {
    hostResolv = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    /* no resolver configured on the host */
  }
  writeFileSync(join(etc, 'hostname'), `${rec.config.hostname}\n`);
  writeFileSync(join(etc, 'hosts'), hostsFile(rec.config.hostname, ip));
  writeFileSync(join(etc, 'resolv.conf'), resolvConf(hostResolv, { hostNetwork: hostNet, dns }));
}

export function runPlan(ctx: RunnerContext, rec: ContainerRecord): RunPlan {
  const dir = containerDir(ctx.paths, rec.config.id);
  const image = resolveImage(ctx.paths, rec.config.imageId ?? rec.config.image);
  const rootfs = join(dir, 'rootfs');
  const layer = (name: string) => {
    const upper = join(dir, 'layers', name, 'upper');
    const work = join(dir, 'layers', name, 'work');
    mkdirSync(upper, { recursive: true });
    mkdirSync(work, { recursive: true });
    return { upper, work };
  };
  mkdirSync(rootfs, { recursive: true });
  const overlays: Overlay[] = [{ lower: image.rootLower, ...layer('root'), target: rootfs }];
  for (const sub of image.subLayers) {
    overlays.push({ lower: sub.lower, ...layer(sub.target.replace(/\//g, '_')), target: join(rootfs, sub.target) });
  }
  const etc = join(dir, 'etc');
  const binds = [
    ...rec.config.volumes.map((v) => {
      if (!existsSync(v.source)) mkdirSync(v.source, { recursive: true });
      return { source: v.source, target: v.target, readOnly: v.readOnly };
    }),
    { source: join(etc, 'hostname'), target: '/etc/hostname', readOnly: false },
    { source: join(etc, 'hosts'), target: '/etc/hosts', readOnly: false },
    { source: join(etc, 'resolv.conf'), target: '/etc/resolv.conf', readOnly: false },
  ];
  return {
    netns: rec.state.netnsPath,
    cgroupProcs: rec.state.cgroup?.procsFiles ?? [],
    rootfs,
    overlays,
    binds,
    hostname: rec.config.network.kind === 'container' ? undefined : rec.config.hostname,
    env: rec.config.env,
    cwd: rec.config.workdir,
    user: rec.config.user,
    exitFile: exitFilePath(ctx, rec),
    ...isolationPlan(ctx, rec),
    tty: rec.config.tty,
    command: rec.config.command,
  };
}

/** The container's seccomp rules, in its directory. */
export const seccompFileName = 'seccomp.rules';

function seccompFile(ctx: RunnerContext, id: string): string {
  return join(containerDir(ctx.paths, id), seccompFileName);
}

/**
 * The container's compiled filter (undefined when it is unconfined; written at create, remade if
 * missing) and where the helper keeps the BPF program made from it: `seccomp/<hash>.bpf` under the
 * state root, shared by every container with the same filter (libseccomp takes milliseconds).
 */
export function seccompFiles(ctx: RunnerContext, rec: ContainerRecord): Pick<RunPlan, 'seccomp' | 'seccompCache'> {
  if (rec.config.seccomp?.kind === 'unconfined') return {};
  const file = seccompFile(ctx, rec.config.id);
  if (!existsSync(file)) writeFileSync(file, seccompFilterText(rec.config.seccomp) ?? '');
  const cacheDir = ctx.paths.seccomp;
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const hash = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 32);
  return { seccomp: file, seccompCache: join(cacheDir, `${hash}.bpf`) };
}

function isolationPlan(
  ctx: RunnerContext,
  rec: ContainerRecord,
): Pick<RunPlan, 'seccomp' | 'seccompCache' | 'deviceCgroup' | 'deviceRules'> {
  const devices = rec.state.cgroup?.devices;
  return {
    ...seccompFiles(ctx, rec),
    ...(devices?.kind === 'bpf' ? { deviceCgroup: devices.dir, deviceRules: allowedDevices.map(helperDeviceRule) } : {}),
  };
}
