/**
 * Container lifecycle: create → start → (exit) → release → remove, plus stop, kill, exec, logs
 * and the reconciliation every command runs first, which notices containers whose CLI or
 * processes died and releases what they held (network, netns file, cgroup). Mounts need no
 * release: they live only in the container's mount namespace and vanish with its last process.
 *
 * Every step records what it made in the container state before going on, so release() can undo
 * exactly that, from any point, in any later process.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  type CniDns,
  CtnetError,
  CtnetErrorList,
  DefaultExecutor,
  ErrorCode,
  ErrorCollector,
  type Executor,
  log,
  portsConflict,
  wrapError,
} from '../core/index.js';
import { deleteNetns } from '../netns/index.js';
import {
  cleanupFailed,
  releaseExtraAttachments as releaseCachedAttachments,
  syncHostsFiles,
  unnamedNetworks,
} from '../network/index.js';
import { builtinPlugins } from '../plugins/index.js';
import {
  type CgroupManager,
  cgroupManager,
  destroyCgroup,
  detectCgroups,
  killCgroup,
  type Limits,
  oomKillCount,
} from './cgroups/index.js';
import { knownContainers } from './containers.js';
import { hostsFile, resolvConf } from './etc-files.js';
import { execArgs, type Overlay, type RunPlan, startContainerProcess, waitForExit } from './helper.js';
import { resolveImage, resolveUser } from './images.js';
import { allowedDevices, applyV1DeviceRules, helperDeviceRule, type SecurityOptions, seccompFilterText } from './isolation.js';
import {
  containerIfname,
  defaultNetworkName,
  loadOrCreateNetwork,
  networkFromText,
  portMappingsArg,
  primaryAddress,
  retireNetns,
  runnerRuntime,
} from './network.js';
import { commandLine } from './oci/index.js';
import { cliCommand, helperPath, type RunnerPaths, runnerPaths } from './paths.js';
import { probePort } from './port-probe.js';
import { allocatePorts, type PortMapping, type PortRequest, parseExpose, portTaken } from './ports.js';
import {
  type ContainerConfig,
  type ContainerRecord,
  type ContainerState,
  changeStatus,
  containerDir,
  createRecord,
  findRecord,
  isAlive,
  listRecords,
  loadRecord,
  type NetworkMode,
  newId,
  ownerMark,
  parentPid,
  processStart,
  releaseName,
  removeRecord,
  reserveName,
  saveRecord,
  sweepRemovals,
  withLock,
} from './state.js';
import { flushTimings, mark } from './timing.js';

export interface RunnerContext {
  paths: RunnerPaths;
  cgroups: CgroupManager;
  /** Parent of every container cgroup (CTNET_CGROUP_PARENT, default "ctnet"). */
  cgroupParent: string;
  executor(): Promise<Executor>;
  /** Starts loading built-in plugins of these types (overlaps module loading with the helper's start). */
  preload(types: readonly string[]): void;
  /** The caller's environment (`-e NAME` without a value copies NAME from it). */
  env: NodeJS.ProcessEnv;
  /**
   * A foreground container's stdio: the caller's (inherited), or these descriptors (the agent's caller's:
   * stdin is used with -i).
   */
  stdio?: { in?: number; out: number; err: number };
  /**
   * Calls `forward` with each signal meant for a foreground container until the returned function
   * is called. The CLI passes on what is sent to it alone (the terminal's SIGINT reaches the
   * container's monitor directly, in the same process group).
   */
  signals(forward: (signal: NodeJS.Signals) => void): () => void;
  /** Start every container in a session of its own (a daemon's process group is not the user's). */
  ownSession?: boolean;
  /**
   * How long a container may take from its record to its start (the agent sets it; image pulls come before and do
   * not count). Past it the run fails at once, and a start that completes after all is undone.
   */
  setupDeadlineMs?: number;
}

function processSignals(forward: (signal: NodeJS.Signals) => void): () => void {
  // SIGWINCH: the monitor may run in a session of its own, where the terminal's resize does not reach it.
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGWINCH'] as const).map(
    (s) => [s, () => (s === 'SIGINT' ? undefined : forward(s))] as const,
  );
  for (const [s, h] of handlers) process.on(s, h);
  return () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
}

export function defaultContext(env: NodeJS.ProcessEnv = process.env): RunnerContext {
  let executor: Executor | undefined;
  return {
    paths: runnerPaths(),
    cgroups: cgroupManager(detectCgroups(env)),
    cgroupParent: env.CTNET_CGROUP_PARENT || 'ctnet',
    async executor() {
      executor ??= new DefaultExecutor(builtinPlugins);
      return executor;
    },
    preload(types) {
      for (const type of types) builtinPlugins[type]?.().catch(() => undefined);
    },
    env,
    signals: processSignals,
  };
}

export const defaultPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A create request, already split into values (the CLI parses flags into this). */
export interface CreateRequest {
  image: string;
  command: string[];
  entrypoint?: string;
  name?: string;
  env: string[];
  volumes: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  network: string;
  publish: PortRequest[];
  /** -P: also publish every port the image exposes. */
  publishAll?: boolean;
  limits: Limits;
  autoRemove: boolean;
  interactive: boolean;
  tty: boolean;
  /** --security-opt, parsed (a profile file already read). */
  security?: SecurityOptions;
  /** --preserve-fds N: the caller's fds 3 .. 3+N-1 reach the workload. */
  preserveFds?: number;
}

export function parseNetworkMode(text: string): NetworkMode {
  if (text === 'none') return { kind: 'none' };
  if (text === 'host') return { kind: 'host' };
  if (text === 'bridge' || text === '') return { kind: 'cni', network: defaultNetworkName };
  if (text.startsWith('container:')) {
    const container = text.slice('container:'.length);
    if (!container) throw new CtnetError(ErrorCode.invalidConfig, 'invalid network mode "container:": name the container');
    return { kind: 'container', container };
  }
  return { kind: 'cni', network: text };
}

export function parseVolume(spec: string): { source: string; target: string; readOnly: boolean } {
  const parts = spec.split(':');
  const [source = '', target = '', mode] = parts;
  if (parts.length < 2 || parts.length > 3 || !source.startsWith('/') || !target.startsWith('/')) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid volume "${spec}": expected /host/path:/container/path[:ro|rw]`);
  }
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid volume "${spec}": mode must be ro or rw`);
  }
  return { source, target, readOnly: mode === 'ro' };
}

/** `base` with `-e` entries added or replacing (a bare NAME copies NAME from the caller's environment). */
function withEnv(base: readonly string[], entries: readonly string[], callerEnv: NodeJS.ProcessEnv): string[] {
  const env = [...base];
  for (const e of entries) {
    const entry = e.includes('=') ? e : callerEnv[e] !== undefined ? `${e}=${callerEnv[e]}` : undefined;
    if (entry === undefined) continue;
    const key = entry.slice(0, entry.indexOf('='));
    const at = env.findIndex((x) => x.startsWith(`${key}=`));
    if (at >= 0) env.splice(at, 1);
    env.push(entry);
  }
  return env;
}

/** Validates everything and writes the record; nothing else exists yet when this throws. */
export function createContainer(ctx: RunnerContext, req: CreateRequest): ContainerRecord {
  const image = resolveImage(ctx.paths, req.image);
  const network = parseNetworkMode(req.network);
  if (network.kind === 'container' || network.kind === 'host') {
    if (req.publish.length) {
      throw new CtnetError(ErrorCode.invalidConfig, `conflicting options: port publishing and --network ${req.network}`);
    }
  }
  if (network.kind === 'container') {
    if (req.hostname) throw new CtnetError(ErrorCode.invalidConfig, 'conflicting options: --hostname and --network container:');
    const target = findRecord(ctx.paths, network.container);
    if (target.state.status !== 'running') {
      throw new CtnetError(
        ErrorCode.invalidConfig,
        `cannot join the network of container ${network.container}: it is not running`,
      );
    }
  }
  const volumes = req.volumes.map(parseVolume);
  const id = newId();
  const defaults = image.defaults ?? {};
  const userSpec = req.user ?? defaults.user;
  const user = userSpec ? resolveUser(image.lowers, userSpec) : undefined;
  const hostname = req.hostname ?? id.slice(0, 12);
  const command = commandLine(defaults, req.entrypoint, req.command) ?? (image.defaults ? undefined : ['sh']);
  if (!command) {
    throw new CtnetError(ErrorCode.invalidConfig, `no command specified: image ${req.image} has no Entrypoint or Cmd`);
  }
  const base = [`PATH=${defaultPath}`, `HOSTNAME=${hostname}`, `HOME=${user && !user.startsWith('0:') ? '/' : '/root'}`];
  if (req.tty) base.push('TERM=xterm');
  const env = withEnv(withEnv(base, defaults.env ?? [], {}), req.env, ctx.env);
  // -P publishes what the image exposes as well as each --expose (the CLI adds those).
  const publish = [...req.publish];
  if (req.publishAll && network.kind === 'cni') {
    for (const port of defaults.exposedPorts ?? []) {
      for (const p of parseExpose(port)) {
        if (!publish.some((q) => q.containerPort === p.containerPort && q.protocol === p.protocol)) publish.push(p);
      }
    }
  }
  const seccomp = req.security?.seccomp;
  const filter = seccompFilterText(seccomp); // a bad profile is refused before anything is made
  const config: ContainerConfig = {
    id,
    name: req.name ?? `ctnet-${id.slice(0, 8)}`,
    image: image.name,
    imageId: image.id,
    command,
    env,
    hostname,
    workdir: req.workdir ?? defaults.workingDir,
    user,
    volumes,
    network,
    publish,
    limits: req.limits,
    autoRemove: req.autoRemove,
    interactive: req.interactive,
    tty: req.tty,
    seccomp,
    createdAt: new Date().toISOString(),
  };
  const rec: ContainerRecord = { config, state: { status: 'creating', owner: ownerMark(), ports: [] } };
  let named = false;
  try {
    mkdirSync(ctx.paths.containers, { recursive: true });
    // The name first: a crash after it leaves a name without a record, which the next reserveName takes over.
    reserveName(ctx.paths, config.name, id);
    named = true;
    createRecord(ctx.paths, rec, filter !== undefined ? { [seccompFileName]: filter } : {});
  } catch (err) {
    // A full or read-only state root, or a name taken: nothing of this container stays (its name only if it was ours).
    if (named) releaseName(ctx.paths, config.name, id);
    if (err instanceof CtnetError) throw err;
    throw wrapError(
      `create the record of container ${config.name} under ${ctx.paths.containers}`,
      whyNotWritable(ctx.paths.containers) ?? err,
      ErrorCode.io,
    );
  }
  return rec;
}

/**
 * The reason a directory cannot be written to (EROFS, EACCES), when there is one: a recursive mkdir on a read-only
 * file system reports ENOENT, which would send a reader looking for a missing directory.
 */
function whyNotWritable(dir: string): unknown {
  try {
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (err) {
    return err;
  }
}

/** The ports other live containers hold, read once per allocation (not once per candidate port). */
function portsInUse(ctx: RunnerContext, self: string): { name: string; ports: PortMapping[] }[] {
  return listRecords(ctx.paths)
    .filter((r) => r.config.id !== self && r.state.status !== 'exited' && r.state.ports.length > 0)
    .map((r) => ({ name: r.config.name, ports: r.state.ports }));
}

function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    /* default below */
  }
  return [32768, 60999];
}

/** Allocates host ports: other containers' ports by state, other processes by a test bind. */
async function allocate(ctx: RunnerContext, rec: ContainerRecord): Promise<PortMapping[]> {
  const busy: PortMapping[] = [];
  const others = portsInUse(ctx, rec.config.id);
  const holder = (m: PortMapping) => {
    if (busy.some((b) => portsConflict(b, m))) return 'a process on the host';
    const other = others.find((o) => o.ports.some((p) => portsConflict(p, m)));
    return other ? `container ${other.name}` : undefined;
  };
  for (let attempt = 0; ; attempt++) {
    const mappings = allocatePorts(rec.config.publish, { ephemeral: ephemeralRange(), holder });
    const taken = (await Promise.all(mappings.map(async (m) => ((await probePort(m)) ? undefined : m)))).filter(
      (m): m is PortMapping => m !== undefined,
    );
    if (taken.length === 0) return mappings;
    // A port the user named cannot move; a drawn one is drawn again (a few times) without it.
    const fixed = taken.find((m) =>
      rec.config.publish.some((r) => r.hostPorts[0] === m.hostPort && r.hostPorts[1] === m.hostPort),
    );
    if (fixed || attempt >= 5) throw portTaken(fixed ?? (taken[0] as PortMapping), 'a process on the host');
    busy.push(...taken);
  }
}

function cgroupName(id: string): string {
  return `ctnet-${id.slice(0, 12)}`;
}

/** Sets up namespaces, cgroup and network, then starts the processes. Releases everything on failure. */
export async function startContainer(
  ctx: RunnerContext,
  rec: ContainerRecord,
  opts: { detach: boolean; preserveFds?: number },
): Promise<{ rec: ContainerRecord; exited?: Promise<number> }> {
  const { paths } = ctx;
  const dir = containerDir(paths, rec.config.id);
  const save = () => saveRecord(paths, rec);
  const st = rec.state;
  changeStatus(rec, { to: 'creating' });
  save();
  // The code of an earlier run (ctnet start of an exited container) must not pass for this run's.
  rmSync(exitFilePath(ctx, rec), { force: true });
  try {
    // Recorded before it exists: a crash half-way through making it still leaves its paths.
    st.cgroup = ctx.cgroups.describe(ctx.cgroupParent, cgroupName(rec.config.id));
    save();
    ctx.cgroups.create(ctx.cgroupParent, cgroupName(rec.config.id), rec.config.limits);
    if (st.cgroup.devices?.kind === 'v1') applyV1DeviceRules(st.cgroup.devices.dir);
    mark('cgroup');
    const net = rec.config.network;
    let netnsCreate: string | undefined;
    if (net.kind === 'none' || net.kind === 'cni') {
      // The helper makes the namespace (one process less than a separate step); recorded first,
      // so a crash at any point still knows what to remove.
      mkdirSync(paths.netns, { recursive: true });
      netnsCreate = join(paths.netns, rec.config.id);
      st.netnsPath = netnsCreate;
      st.ownNetns = true;
    } else if (net.kind === 'container') {
      const target = findRecord(paths, net.container);
      if (target.state.status !== 'running' || !isAlive(target.state.pid, target.state.pidStart)) {
        throw new CtnetError(ErrorCode.invalidConfig, `cannot join the network of container ${net.container}: it is not running`);
      }
      st.netnsPath = target.state.netnsPath ?? `/proc/${target.state.pid}/ns/net`;
      st.ownNetns = false;
    }
    let attach: (() => Promise<void>) | undefined;
    if (net.kind === 'cni') {
      const network = await loadOrCreateNetwork(paths, net.network);
      st.ports = await allocate(ctx, rec);
      ctx.preload(network.list.plugins.map((p) => p.type));
      attach = async () => {
        mark('netns');
        const executor = await ctx.executor();
        // Recorded before ADD: a crash in the middle still leaves enough to DEL.
        st.attachment = {
          network: net.network,
          ifname: containerIfname,
          conflist: network.raw,
          result: {},
          portMappings: st.ports,
        };
        save();
        try {
          st.attachment.result = await runnerRuntime(executor, paths).addList(
            network,
            {
              containerId: rec.config.id,
              netns: netnsCreate ?? '',
              ifname: containerIfname,
              capabilityArgs: { portMappings: portMappingsArg(st.ports) },
            },
            { undo: true },
          );
        } catch (err) {
          // addList already ran DEL over the list; only a failed DEL needs another one later.
          if (!cleanupFailed(err)) st.attachment = undefined;
          save();
          throw err;
        }
        save();
        writeEtcFiles(dir, rec, st.attachment.result.dns as CniDns | undefined);
        mark('network');
      };
    }
    save();
    writeEtcFiles(dir, rec, undefined);
    const plan: RunPlan = {
      ...runPlan(ctx, rec),
      netns: netnsCreate ? undefined : st.netnsPath,
      netnsCreate,
      // Without CNI nothing needs the namespace after the workload: the monitor removes it.
      netnsRemoveOnExit: net.kind === 'none',
      preserveFds: opts.preserveFds,
    };
    const logFd = opts.detach ? openSync(join(dir, 'log'), 'a') : undefined;
    let started: Awaited<ReturnType<typeof startContainerProcess>>;
    try {
      started = await startContainerProcess(
        opts.detach ? { ...plan, exitCommand: [...cliCommand(), 'container', 'cleanup', rec.config.id] } : plan,
        opts.detach
          ? { stdin: 'ignore', out: logFd ?? 'ignore', err: logFd ?? 'ignore' }
          : {
              stdin: rec.config.interactive ? (ctx.stdio?.in ?? 'inherit') : 'ignore',
              out: ctx.stdio?.out ?? 'inherit',
              err: ctx.stdio?.err ?? 'inherit',
            },
        opts.detach || !!ctx.ownSession,
        attach,
      );
    } finally {
      if (logFd !== undefined) closeSync(logFd);
    }
    changeStatus(rec, { to: 'running', pid: started.pid, pidStart: processStart(started.pid) });
    save();
    mark('start');
    if (net.kind === 'cni') await refreshPeerNames(ctx, net.network);
    if (opts.detach) {
      started.monitor.unref();
      return { rec };
    }
    return { rec, exited: waitForExit(started.monitor) };
  } catch (err) {
    st.error = err instanceof Error ? err.message : String(err);
    await release(ctx, rec);
    throw err;
  }
}

function writeEtcFiles(dir: string, rec: ContainerRecord, dns: CniDns | undefined): void {
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

function runPlan(ctx: RunnerContext, rec: ContainerRecord): RunPlan {
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
const seccompFileName = 'seccomp.rules';

function seccompFile(ctx: RunnerContext, id: string): string {
  return join(containerDir(ctx.paths, id), seccompFileName);
}

/**
 * The container's compiled filter (undefined when it is unconfined; written at create, remade if
 * missing) and where the helper keeps the BPF program made from it: `seccomp/<hash>.bpf` under the
 * state root, shared by every container with the same filter (libseccomp takes milliseconds).
 */
function seccompFiles(ctx: RunnerContext, rec: ContainerRecord): Pick<RunPlan, 'seccomp' | 'seccompCache'> {
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

/**
 * Releases everything the container holds, whatever point it got to; idempotent (each step
 * clears its record). Errors are collected, every step runs, the state is saved after each.
 */
export async function release(ctx: RunnerContext, rec: ContainerRecord, exitCode?: number): Promise<CtnetError[]> {
  const st = rec.state;
  const save = () => {
    if (existsSync(containerDir(ctx.paths, rec.config.id))) saveRecord(ctx.paths, rec);
  };
  const failures = new ErrorCollector();
  let killed = false;
  if (isAlive(st.pid, st.pidStart)) {
    killed = true;
    try {
      process.kill(st.pid as number, 'SIGKILL');
    } catch {
      /* it just went */
    }
  }
  if (st.cgroup) killed = killCgroup(st.cgroup) && killed;
  const namedNetwork = st.attachment?.network;
  const extras = await releaseExtraAttachments(ctx, rec);
  for (const e of extras.errors) failures.add(e);
  mark('del extras');
  if (st.attachment) {
    try {
      const executor = await ctx.executor();
      const net = networkFromText(st.attachment.conflist, `state of ${rec.config.id}`);
      let netns = st.netnsPath && existsSync(st.netnsPath) ? st.netnsPath : '';
      // Our own namespace, nothing of the container left running: let the kernel take the veth (retireNetns).
      if (netns && st.ownNetns && !extras.errors.length && (await retireNetns(netns, net.list.plugins))) netns = '';
      await runnerRuntime(executor, ctx.paths).delList(
        net,
        {
          containerId: rec.config.id,
          netns,
          ifname: st.attachment.ifname,
          capabilityArgs: { portMappings: portMappingsArg(st.attachment.portMappings) },
        },
        Object.keys(st.attachment.result).length ? st.attachment.result : undefined,
      );
      st.attachment = undefined;
      save();
    } catch (err) {
      failures.add(err);
    }
    mark('cni del');
  }
  if (st.netnsPath && st.ownNetns) {
    try {
      if (existsSync(st.netnsPath)) {
        // In-process (an unmount): a helper process for it cost ~5 ms of every teardown.
        await deleteNetns(st.netnsPath);
      }
      st.netnsPath = undefined;
      st.ownNetns = undefined;
      save();
    } catch (err) {
      failures.add(err, `delete network namespace ${st.netnsPath}`);
    }
  } else if (st.netnsPath) {
    st.netnsPath = undefined;
  }
  mark('netns del');
  if (st.cgroup) {
    st.oomKilled = st.oomKilled || oomKillCount(st.cgroup) > 0;
    destroyCgroup(st.cgroup);
    st.cgroup = undefined;
  }
  mark('cgroup del');
  changeStatus(rec, { to: 'exited', exitCode: exitCode ?? readExitFile(ctx, rec) ?? (killed ? 137 : 255) });
  if (failures.failed) st.error = failures.errors.map((e) => e.message).join('; ');
  save();
  if (namedNetwork || extras.count) await refreshPeerNames(ctx, extras.count ? undefined : namedNetwork);
  return failures.errors;
}

/**
 * DELs the attachments `network connect` added (cached like libcni's, not in the record), while
 * the namespace still exists, so stopping a container leaks none of them.
 */
async function releaseExtraAttachments(
  ctx: RunnerContext,
  rec: ContainerRecord,
): Promise<{ count: number; errors: CtnetError[] }> {
  const runtime = runnerRuntime(await ctx.executor(), ctx.paths);
  const count = runtime.cachedAttachments().filter((a) => a.containerId === rec.config.id).length;
  if (count === 0) return { count, errors: [] };
  const netns = rec.state.netnsPath && existsSync(rec.state.netnsPath) ? rec.state.netnsPath : '';
  return { count, errors: await releaseCachedAttachments(runtime, rec.config.id, netns) };
}

/**
 * Keeps /etc/hosts of containers sharing a user-defined network current (network/names.ts). A
 * failure costs names, never the container, so it is logged and swallowed.
 */
async function refreshPeerNames(ctx: RunnerContext, network: string | undefined): Promise<void> {
  try {
    if (network === undefined || !unnamedNetworks.has(network)) syncHostsFiles(ctx.paths, knownContainers(ctx.paths));
  } catch (err) {
    log.warn({ err }, 'failed to update the hosts files of containers on shared networks');
  }
}

/** Where ctnet-init writes the container's exit code once it has reaped it. */
function exitFilePath(ctx: RunnerContext, rec: ContainerRecord): string {
  return join(containerDir(ctx.paths, rec.config.id), 'exit');
}

function readExitFile(ctx: RunnerContext, rec: ContainerRecord): number | undefined {
  try {
    const n = Number(readFileSync(exitFilePath(ctx, rec), 'utf8').trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** After the container's processes are gone: release, and remove it if it was run with --rm. */
export async function finalize(ctx: RunnerContext, id: string, exitCode?: number): Promise<ContainerRecord | undefined> {
  if (!loadRecord(ctx.paths, id)) return undefined;
  return withLock(ctx.paths, id, async () => {
    const rec = loadRecord(ctx.paths, id);
    if (!rec) return undefined;
    // Every caller saw a run end, but `start` may have begun the next one since (a stopped container's monitor
    // runs its cleanup ~100 ms after the exit): that run is not ours to release.
    if (isLive(rec.state)) return rec;
    if (rec.state.status !== 'exited' || rec.state.cgroup || rec.state.attachment || rec.state.netnsPath) {
      const errors = await release(ctx, rec, exitCode);
      // Nobody else hears of these (a monitor's exit command, a reconciliation): log them.
      if (errors.length)
        log.warn({ id: rec.config.id, errors: errors.map((e) => e.message) }, 'failed to release everything the container held');
    }
    if (rec.config.autoRemove) removeRecord(ctx.paths, rec);
    return rec;
  });
}

/** A run under way: its creating CLI or its init is still alive. */
function isLive(st: ContainerState): boolean {
  if (st.status === 'creating') return isAlive(st.owner?.pid, st.owner?.start);
  return st.status === 'running' && isAlive(st.pid, st.pidStart);
}

/**
 * Notices containers whose processes (or whose creating CLI) died without cleaning up, and
 * releases them. Run at the start of every command.
 */
export async function reconcile(ctx: RunnerContext): Promise<void> {
  for (const rec of listRecords(ctx.paths)) {
    const st = rec.state;
    const dead = st.status === 'exited' ? !!(st.cgroup || st.attachment || st.netnsPath) : !isLive(st);
    if (!dead) continue;
    try {
      const wasCreating = st.status === 'creating' && !st.pid;
      const after = await finalize(ctx, rec.config.id);
      // A run that died half-way never produced a container the user saw: leave nothing behind.
      if (after && wasCreating && loadRecord(ctx.paths, rec.config.id)) removeRecord(ctx.paths, after);
    } catch (err) {
      log.warn({ id: rec.config.id, err: String(err) }, 'failed to release a dead container');
    }
  }
}

type Started = Awaited<ReturnType<typeof startContainer>>;

class SetupDeadlineError extends CtnetError {}

/**
 * Waits for `starting` for at most ctx.setupDeadlineMs. Past it the caller gets an error at once (a setup stuck on
 * a lock held elsewhere or a hung plugin keeps no caller of the agent waiting), and the start is undone when it
 * settles: a container that started after all is removed as `rm -f` removes it, a failed one loses its record.
 */
async function startWithinDeadline(ctx: RunnerContext, rec: ContainerRecord, starting: Promise<Started>): Promise<Started> {
  const ms = ctx.setupDeadlineMs;
  if (!ms) return starting;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new SetupDeadlineError(
            ErrorCode.tryAgainLater,
            `failed to start container ${rec.config.name}: it was not running after ${ms / 1000} s`,
            { hint: 'whatever it had set up is removed when its setup ends; see the agent log for the step it waited on' },
          ),
        ),
      ms,
    );
  });
  try {
    return await Promise.race([starting, deadline]);
  } catch (err) {
    if (err instanceof SetupDeadlineError) {
      log.warn({ container: rec.config.id, deadlineMs: ms }, 'run past its setup deadline: undoing it once its start settles');
      starting
        .then(
          () => removeContainer(ctx, rec.config.id, true),
          () => removeRecord(ctx.paths, rec),
        )
        .then(
          () => log.info({ container: rec.config.id }, 'late run undone'),
          (e: unknown) => log.warn({ container: rec.config.id, err: String(e) }, 'failed to undo a late run'),
        );
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The whole of `ctnet run`: create, start, and in the foreground wait and clean up. */
export async function runContainer(
  ctx: RunnerContext,
  req: CreateRequest,
  detach: boolean,
): Promise<{ rec: ContainerRecord; exitCode?: number }> {
  mark('startup');
  await reconcile(ctx);
  const rec = createContainer(ctx, req);
  mark('create');
  let started: Started;
  try {
    started = await startWithinDeadline(ctx, rec, startContainer(ctx, rec, { detach, preserveFds: req.preserveFds }));
  } catch (err) {
    // Past the deadline the start is still under way; startWithinDeadline undoes it once it settles.
    if (!(err instanceof SetupDeadlineError)) removeRecord(ctx.paths, rec);
    throw err;
  }
  if (!started.exited) {
    flushTimings();
    return { rec };
  }
  // With -t the monitor (init's parent) owns the pty: a resize goes to it, which copies the size.
  const monitor = rec.config.tty && rec.state.pid ? parentPid(rec.state.pid) : undefined;
  const stopForwarding = ctx.signals((sig) => {
    try {
      const target = sig === 'SIGWINCH' && monitor ? monitor : rec.state.pid;
      if (target) process.kill(target, sig);
    } catch {
      /* it has just exited */
    }
  });
  const exitCode = await started.exited;
  mark('workload');
  stopForwarding();
  const after = await finalize(ctx, rec.config.id, exitCode);
  mark('teardown');
  flushTimings();
  return { rec: after ?? rec, exitCode: after?.state.oomKilled ? 137 : exitCode };
}

export async function startExisting(ctx: RunnerContext, ref: string): Promise<ContainerRecord> {
  await reconcile(ctx);
  const found = findRecord(ctx.paths, ref);
  return withLock(ctx.paths, found.config.id, async () => {
    const rec = loadRecord(ctx.paths, found.config.id) ?? found;
    if (rec.state.status === 'running') return rec;
    if (rec.state.status === 'creating') throw new CtnetError(ErrorCode.tryAgainLater, `container ${ref} is being created`);
    await startContainer(ctx, rec, { detach: true });
    return rec;
  });
}

async function waitGone(pid: number | undefined, start: string | undefined, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid, start)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/**
 * Waits until the container's monitor (ctnet-init, the parent that reaps it) has written the exit code. It does so
 * right after the reap, but a loaded machine can run our finalize first, which would then record 255 for a container
 * that exited with its own code. Bounded: a monitor that died with it never writes.
 */
async function waitExitFile(ctx: RunnerContext, rec: ContainerRecord, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (readExitFile(ctx, rec) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

export async function stopContainer(ctx: RunnerContext, ref: string, timeoutSeconds = 10): Promise<ContainerRecord> {
  await reconcile(ctx);
  const rec = findRecord(ctx.paths, ref);
  const { pid, pidStart } = rec.state;
  if (rec.state.status === 'running' && isAlive(pid, pidStart)) {
    signal(pid as number, 'SIGTERM');
    if (!(await waitGone(pid, pidStart, timeoutSeconds * 1000))) {
      signal(pid as number, 'SIGKILL');
      await waitGone(pid, pidStart, 5000);
    }
    await waitExitFile(ctx, rec, 2000);
  }
  return (await finalize(ctx, rec.config.id)) ?? rec;
}

function signal(pid: number, sig: NodeJS.Signals | number): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    throw wrapError(`send signal ${sig} to process ${pid}`, err);
  }
}

export function parseSignal(text: string): NodeJS.Signals | number {
  if (/^\d+$/.test(text)) return Number(text);
  const name = (text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`) as NodeJS.Signals;
  const known = [
    'SIGKILL',
    'SIGTERM',
    'SIGINT',
    'SIGHUP',
    'SIGQUIT',
    'SIGUSR1',
    'SIGUSR2',
    'SIGSTOP',
    'SIGCONT',
    'SIGWINCH',
    'SIGALRM',
  ];
  if (!known.includes(name)) throw new CtnetError(ErrorCode.invalidConfig, `invalid signal: ${text}`);
  return name;
}

export async function killContainer(
  ctx: RunnerContext,
  ref: string,
  sig: NodeJS.Signals | number = 'SIGKILL',
): Promise<ContainerRecord> {
  await reconcile(ctx);
  const rec = findRecord(ctx.paths, ref);
  if (rec.state.status !== 'running' || !isAlive(rec.state.pid, rec.state.pidStart)) {
    throw new CtnetError(ErrorCode.invalidConfig, `container ${ref} is not running`);
  }
  signal(rec.state.pid as number, sig);
  if (sig === 'SIGKILL' || sig === 9) {
    await waitGone(rec.state.pid, rec.state.pidStart, 5000);
    await waitExitFile(ctx, rec, 2000);
    return (await finalize(ctx, rec.config.id)) ?? rec;
  }
  return rec;
}

export async function removeContainer(ctx: RunnerContext, ref: string, force: boolean): Promise<ContainerRecord> {
  await reconcile(ctx);
  const rec = findRecord(ctx.paths, ref);
  if (rec.state.status !== 'exited') {
    if (!force) {
      throw new CtnetError(ErrorCode.invalidConfig, `cannot remove container ${ref}: it is ${rec.state.status}`, {
        hint: `stop it first (ctnet stop ${ref}) or use rm -f`,
      });
    }
    if (isAlive(rec.state.pid, rec.state.pidStart)) signal(rec.state.pid as number, 'SIGKILL');
    await waitGone(rec.state.pid, rec.state.pidStart, 5000);
  }
  await withLock(ctx.paths, rec.config.id, async () => {
    const now = loadRecord(ctx.paths, rec.config.id);
    if (!now) return;
    const errors = await release(ctx, now);
    if (errors.length && !force) {
      throw new CtnetErrorList(`remove container ${ref}`, errors, {
        hint: 'retry, or use rm -f to forget the container anyway',
      });
    }
    removeRecord(ctx.paths, now);
    if (errors.length) {
      throw new CtnetErrorList(`release everything of removed container ${ref}`, errors);
    }
  });
  return rec;
}

export async function pruneContainers(ctx: RunnerContext): Promise<ContainerRecord[]> {
  await reconcile(ctx);
  sweepRemovals(ctx.paths);
  const removed: ContainerRecord[] = [];
  for (const rec of listRecords(ctx.paths)) {
    if (rec.state.status !== 'exited') continue;
    await removeContainer(ctx, rec.config.id, false);
    removed.push(rec);
  }
  return removed;
}

export async function listContainers(ctx: RunnerContext, all: boolean): Promise<ContainerRecord[]> {
  await reconcile(ctx);
  return listRecords(ctx.paths).filter((r) => all || r.state.status === 'running');
}

export function logFile(ctx: RunnerContext, rec: ContainerRecord): string {
  return join(containerDir(ctx.paths, rec.config.id), 'log');
}

/** Streams the log to `write`; with follow, until the container stops. */
export async function streamLogs(ctx: RunnerContext, ref: string, follow: boolean, write: (b: Buffer) => void): Promise<void> {
  const rec = findRecord(ctx.paths, ref);
  const file = logFile(ctx, rec);
  let offset = 0;
  const drain = () => {
    let size = 0;
    try {
      size = statSync(file).size;
    } catch {
      return;
    }
    if (size <= offset) return;
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(size - offset);
      const n = readSync(fd, buf, 0, buf.length, offset);
      offset += n;
      write(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
  };
  drain();
  if (!follow) return;
  for (;;) {
    const now = loadRecord(ctx.paths, rec.config.id);
    const running = now?.state.status === 'running' && isAlive(now.state.pid, now.state.pidStart);
    await new Promise((r) => setTimeout(r, 100));
    drain();
    if (!running) return;
  }
}

export function requireRunning(ctx: RunnerContext, ref: string): ContainerRecord {
  const rec = findRecord(ctx.paths, ref);
  if (rec.state.status !== 'running' || !isAlive(rec.state.pid, rec.state.pidStart)) {
    throw new CtnetError(ErrorCode.invalidConfig, `container ${ref} is not running`);
  }
  return rec;
}

/** `ctnet exec`: joins every namespace and the cgroup of the running container. */
export async function execInContainer(
  ctx: RunnerContext,
  ref: string,
  opts: { command: string[]; env: string[]; workdir?: string; user?: string; interactive: boolean },
): Promise<number> {
  await reconcile(ctx);
  const rec = requireRunning(ctx, ref);
  const image = resolveImage(ctx.paths, rec.config.imageId ?? rec.config.image);
  const env = withEnv(rec.config.env, opts.env, ctx.env);
  const args = execArgs({
    pid: rec.state.pid as number,
    cgroupProcs: rec.state.cgroup?.procsFiles ?? [],
    env,
    cwd: opts.workdir ?? rec.config.workdir,
    user: opts.user ? resolveUser(image.lowers, opts.user) : rec.config.user,
    ...seccompFiles(ctx, rec),
    command: opts.command,
  });
  const child = spawn(helperPath(), args, { stdio: [opts.interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'] });
  return waitForExit(child);
}

/** CNI CHECK of a running container's network (in list order, with the stored result). */
export async function checkContainer(ctx: RunnerContext, ref: string): Promise<string | undefined> {
  await reconcile(ctx);
  const rec = requireRunning(ctx, ref);
  const a = rec.state.attachment;
  if (!a) return undefined;
  await runnerRuntime(await ctx.executor(), ctx.paths).checkList(
    networkFromText(a.conflist, `state of ${rec.config.id}`),
    {
      containerId: rec.config.id,
      netns: rec.state.netnsPath ?? '',
      ifname: a.ifname,
      capabilityArgs: { portMappings: portMappingsArg(a.portMappings) },
    },
    a.result,
  );
  return a.network;
}
