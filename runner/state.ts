/**
 * Container records under the state root: `containers/<id>/container.json` (config + state,
 * written atomically), `names/<name>` (a symlink to the id, created with O_EXCL semantics so two
 * runs cannot take the same name), and a per-container lock file for commands that change state.
 *
 * State machine: creating → running → exited (→ removed). "creating" carries the pid of the CLI
 * doing it, so the next command can tell a crashed run from one in progress.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CtnetError, ErrorCode, hasErrno, randomHex } from '../core/index.js';
import type { CgroupRecord, Limits } from './cgroups/index.js';
import type { SeccompChoice } from './isolation.js';
import type { RunnerPaths } from './paths.js';
import type { PortMapping, PortRequest } from './ports.js';

export type NetworkMode =
  | { kind: 'none' }
  | { kind: 'host' }
  | { kind: 'cni'; network: string }
  | { kind: 'container'; container: string };

export interface Volume {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface ContainerConfig {
  id: string;
  name: string;
  /** The image as the user named it. */
  image: string;
  /** A stored image's ID: what the container runs even if the name moves to another image. */
  imageId?: string;
  command: string[];
  env: string[];
  hostname: string;
  workdir?: string;
  /** Numeric uid[:gid], resolved from the image's /etc/passwd at create time. */
  user?: string;
  volumes: Volume[];
  network: NetworkMode;
  /** What -p/-P asked for, re-allocated on every start. */
  publish: PortRequest[];
  limits: Limits;
  autoRemove: boolean;
  interactive: boolean;
  tty: boolean;
  /** --security-opt seccomp=…; absent: the default profile. */
  seccomp?: SeccompChoice;
  createdAt: string;
}

export interface NetworkAttachmentState {
  network: string;
  ifname: string;
  /** The config list the ADD ran with (DEL must use the same one). */
  conflist: string;
  /** The final ADD result, in the list's CNI version. */
  result: Record<string, unknown>;
  portMappings: PortMapping[];
}

export type Status = 'creating' | 'running' | 'exited';

export interface ContainerState {
  status: Status;
  /** The CLI doing the "creating" step (pid and start time, to survive pid reuse). */
  owner?: { pid: number; start: string };
  /** Host pid of the container's init, and its start time. */
  pid?: number;
  pidStart?: string;
  netnsPath?: string;
  /** True when the netns file is ours (none/bridge modes), false when borrowed (container:). */
  ownNetns?: boolean;
  attachment?: NetworkAttachmentState;
  ports: PortMapping[];
  cgroup?: CgroupRecord;
  exitCode?: number;
  oomKilled?: boolean;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
}

export interface ContainerRecord {
  config: ContainerConfig;
  state: ContainerState;
}

export function newId(): string {
  return randomHex(32);
}

export function containerDir(paths: Pick<RunnerPaths, 'containers'>, id: string): string {
  return join(paths.containers, id);
}

function recordFile(paths: Pick<RunnerPaths, 'containers'>, id: string): string {
  return join(containerDir(paths, id), 'container.json');
}

/**
 * Makes the container's directory with its first record (and `files` beside it) in one step: everything is written
 * under a dot name, which no listing shows, then renamed into place. A process killed on the way leaves either
 * nothing a command can see or a whole record that `ps -a` lists and `rm` removes, never a directory without a
 * record; sweepRemovals deletes the dot directory once its writer is gone.
 */
export function createRecord(paths: RunnerPaths, rec: ContainerRecord, files: Record<string, Buffer | string> = {}): void {
  const id = rec.config.id;
  const draft = join(paths.containers, `.creating-${id}-${process.pid}`);
  try {
    mkdirSync(draft, { recursive: true });
    for (const [name, data] of Object.entries(files)) writeFileSync(join(draft, name), data);
    writeFileSync(join(draft, 'container.json'), `${JSON.stringify(rec, null, 2)}\n`);
    renameSync(draft, containerDir(paths, id));
  } catch (err) {
    rmSync(draft, { recursive: true, force: true });
    throw err;
  }
}

export function saveRecord(paths: RunnerPaths, rec: ContainerRecord): void {
  const file = recordFile(paths, rec.config.id);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, `${JSON.stringify(rec, null, 2)}\n`);
    renameSync(tmp, file);
  } catch (err) {
    // A full disk: no half-written temp file stays beside the record (which is still the last whole one).
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function loadRecord(paths: Pick<RunnerPaths, 'containers'>, id: string): ContainerRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordFile(paths, id), 'utf8')) as ContainerRecord;
  } catch {
    return undefined;
  }
}

export function listRecords(paths: Pick<RunnerPaths, 'containers'>): ContainerRecord[] {
  let ids: string[];
  try {
    ids = readdirSync(paths.containers);
  } catch {
    return [];
  }
  const out: ContainerRecord[] = [];
  for (const id of ids) {
    if (id.startsWith('.')) continue;
    const rec = loadRecord(paths, id);
    if (rec) out.push(rec);
  }
  return out.sort((a, b) => a.config.createdAt.localeCompare(b.config.createdAt));
}

/** Reserves `name` for `id`; a name in use is a clear error naming the holder. */
export function reserveName(paths: RunnerPaths, name: string, id: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(name)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid container name "${name}": use letters, digits, _ . -`);
  }
  mkdirSync(paths.names, { recursive: true });
  try {
    symlinkSync(id, join(paths.names, name));
  } catch (err) {
    if (!hasErrno(err, 'EEXIST')) throw err;
    const holder = readNameTarget(paths, name);
    if (holder && !loadRecord(paths, holder)) {
      // A dangling name left by a crash before the record was written: take it over.
      unlinkSync(join(paths.names, name));
      symlinkSync(id, join(paths.names, name));
      return;
    }
    throw new CtnetError(
      ErrorCode.exists,
      `the container name "${name}" is already in use by container ${holder?.slice(0, 12)}`,
      {
        hint: `remove that container (ctnet rm -f ${name}) or choose another name`,
      },
    );
  }
}

function readNameTarget(paths: RunnerPaths, name: string): string | undefined {
  try {
    return readlinkSync(join(paths.names, name));
  } catch {
    return undefined;
  }
}

export function releaseName(paths: RunnerPaths, name: string, id: string): void {
  if (readNameTarget(paths, name) === id) rmSync(join(paths.names, name), { force: true });
}

/** Finds a container by name, full id or unique id prefix. */
export function findRecord(paths: RunnerPaths, ref: string): ContainerRecord {
  const byName = readNameTarget(paths, ref);
  const direct = byName ? loadRecord(paths, byName) : loadRecord(paths, ref);
  if (direct) return direct;
  if (/^[0-9a-f]{3,64}$/.test(ref)) {
    const matches = listRecords(paths).filter((r) => r.config.id.startsWith(ref));
    if (matches.length === 1 && matches[0]) return matches[0];
    if (matches.length > 1) throw new CtnetError(ErrorCode.invalidConfig, `container id prefix "${ref}" is ambiguous`);
  }
  throw new CtnetError(ErrorCode.unknownContainer, `no such container: ${ref}`);
}

export function removeRecord(paths: RunnerPaths, rec: ContainerRecord): void {
  releaseName(paths, rec.config.name, rec.config.id);
  // Renamed away first: a process waiting for the container's lock (its monitor's cleanup) would
  // otherwise re-create the lock file inside the directory being removed (ENOTEMPTY); after the
  // rename it finds the container gone. Dot names are skipped by every listing.
  const dir = containerDir(paths, rec.config.id);
  const tomb = join(paths.containers, `.removing-${rec.config.id}-${process.pid}`);
  try {
    renameSync(dir, tomb);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return;
    throw err;
  }
  rmSync(tomb, { recursive: true, force: true });
}

/**
 * Directories a removal renamed away but did not finish deleting (the CLI died mid-rm), and drafts of a creation
 * that never got renamed into place (see createRecord): removed when the process that made them is gone. Returns
 * how many.
 */
export function sweepRemovals(paths: RunnerPaths): number {
  let names: string[];
  try {
    names = readdirSync(paths.containers);
  } catch {
    return 0;
  }
  let swept = 0;
  for (const name of names) {
    const m = /^\.(?:removing|creating)-[0-9a-f]+-(\d+)$/.exec(name);
    if (!m || existsSync(`/proc/${m[1]}`)) continue;
    rmSync(join(paths.containers, name), { recursive: true, force: true });
    swept++;
  }
  return swept;
}

// ---- liveness ------------------------------------------------------------------------------

/** The fields of /proc/pid/stat after comm (the state first), or undefined if it is gone. */
function statFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The start time of `pid` (field 22 of /proc/pid/stat), or undefined if it is gone or a zombie. */
export function processStart(pid: number): string | undefined {
  const fields = statFields(pid);
  if (!fields || fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

/** The parent of `pid`, or undefined if it is gone. */
export function parentPid(pid: number): number | undefined {
  const ppid = statFields(pid)?.[1];
  return ppid === undefined ? undefined : Number(ppid);
}

export function isAlive(pid: number | undefined, start: string | undefined): boolean {
  if (!pid) return false;
  const now = processStart(pid);
  return now !== undefined && (start === undefined || now === start);
}

export function ownerMark(): { pid: number; start: string } {
  return { pid: process.pid, start: processStart(process.pid) ?? '' };
}

// ---- status ----------------------------------------------------------------------------------

/**
 * A container's status changes, each with the fields that belong to its new status. A (re)start is `creating`,
 * owned by the process doing it; a started init makes it `running`; a release makes it `exited` (again, when a
 * release is repeated: the first exit code and time stay).
 */
export type StatusChange =
  | { to: 'creating' }
  | { to: 'running'; pid: number; pidStart: string | undefined }
  | { to: 'exited'; exitCode: number };

const allowedChanges: Record<Status, readonly Status[]> = {
  creating: ['creating', 'running', 'exited'],
  running: ['exited'],
  exited: ['creating', 'exited'],
};

/** Applies `change` to the record in memory (the caller saves it); a change its status does not allow is a bug. */
export function changeStatus(rec: ContainerRecord, change: StatusChange): void {
  const st = rec.state;
  if (!allowedChanges[st.status].includes(change.to)) {
    throw new CtnetError(ErrorCode.internal, `container ${rec.config.name} cannot go from ${st.status} to ${change.to}`);
  }
  const now = new Date().toISOString();
  switch (change.to) {
    case 'creating':
      Object.assign(st, { owner: ownerMark(), exitCode: undefined, oomKilled: undefined, error: undefined });
      break;
    case 'running':
      Object.assign(st, { owner: undefined, pid: change.pid, pidStart: change.pidStart, startedAt: now, finishedAt: undefined });
      break;
    case 'exited':
      if (st.status !== 'exited') Object.assign(st, { exitCode: change.exitCode, finishedAt: now });
      Object.assign(st, { owner: undefined, ports: [] });
      break;
  }
  st.status = change.to;
}

// ---- lock ------------------------------------------------------------------------------------

/**
 * Runs `fn` holding the container's lock (a file holding the owner's pid; a dead owner's lock is
 * taken over). Not reentrant: `fn` must not take the same container's lock again.
 */
export async function withLock<T>(paths: RunnerPaths, id: string, fn: () => Promise<T>): Promise<T> {
  const file = join(containerDir(paths, id), 'lock');
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${process.pid} ${processStart(process.pid) ?? ''}`);
      closeSync(fd);
      break;
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) throw new CtnetError(ErrorCode.unknownContainer, `container ${id.slice(0, 12)} is gone`);
      if (!hasErrno(err, 'EEXIST')) throw err;
      let holder: string[] = [];
      try {
        holder = readFileSync(file, 'utf8').split(' ');
      } catch {
        continue;
      }
      if (!isAlive(Number(holder[0]), holder[1] || undefined)) {
        rmSync(file, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new CtnetError(ErrorCode.tryAgainLater, `container ${id.slice(0, 12)} is locked by process ${holder[0]}`);
      }
      // Awaited, not slept: in the agent the holder may be another request of this process.
      await sleep(20);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(file, { force: true });
  }
}
