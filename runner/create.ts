/**
 * Creating a container: a create request validated into its record (image, command, environment, volumes, network
 * mode, published ports), written before anything else exists; and the host ports its start allocates.
 */
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { CtnetError, ErrorCode, portsConflict, wrapError } from '../core/index.js';
import type { Limits } from './cgroups/index.js';
import type { RunnerContext } from './context.js';
import { resolveImage, resolveUser } from './images.js';
import { type SecurityOptions, seccompFilterText } from './isolation.js';
import { defaultNetworkName } from './network.js';
import { commandLine } from './oci/index.js';
import { seccompFileName } from './plan.js';
import { probePort } from './port-probe.js';
import { allocatePorts, type PortMapping, type PortRequest, parseExpose, portTaken } from './ports.js';
import {
  type ContainerConfig,
  type ContainerRecord,
  createRecord,
  findRecord,
  listRecords,
  type NetworkMode,
  newId,
  ownerMark,
  releaseName,
  reserveName,
} from './state.js';

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
export function withEnv(base: readonly string[], entries: readonly string[], callerEnv: NodeJS.ProcessEnv): string[] {
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
export async function allocate(ctx: RunnerContext, rec: ContainerRecord): Promise<PortMapping[]> {
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
