/**
 * The lease directory, in the reference host-local on-disk format (backend/disk/backend.go), so
 * one directory works with ctnet and /usr/lib/cni/host-local in both directions:
 *
 *   <dataDir>/<network>/            mode 0755
 *     <ip>                          one per lease, named by the IP text, mode 0600,
 *                                   content "<containerID>\r\n<ifname>" (old files: "<containerID>")
 *     last_reserved_ip.<setIndex>   the round-robin cursor of range set <setIndex>
 *     lock                          flock(2) taken around every allocation and release
 *     ctnet-owners                  ctnet only: the owner log (owner-log.ts)
 *
 * The reference reads every lease file on every ADD (to refuse a second lease for one attachment) and on every DEL.
 * ctnet avoids that in two ways, both caches that are never the truth:
 *
 * 1. The owner log, for a process that opens the directory once (a plugin binary): an ADD lists the names and reads
 *    only the files the log does not know; the log's entries count only for names in the listing and only while it
 *    vouches for the files (`logVouchesFor`). An ADD appends three short lines; the log is compacted
 *    when it grows past twice its live entries.
 * 2. The kept view, for a long-lived process (the agent, from its second call on a directory): names, owners,
 *    owner → names and cursors stay in memory between calls, and each call applies just the changes that inotify
 *    reported since (dir-watch.ts), so an ADD or DEL costs the same with a thousand leases as with none.
 *
 * Rules that hold whatever either cache says:
 * - nothing is deleted on a cache's word: DEL and GC re-read a file before deleting it (an ADD's rollback deletes
 *   only files it has just created);
 * - no address whose lease file exists is handed out: leases are created with O_EXCL;
 * - a DEL finds every lease of its attachment, whoever wrote it: the log counts only while it vouches for the
 *   files, and the kept view hears of every change or is dropped and read anew (see openLeaseDir).
 * The reference compares every file's content with container IDs; the log's content holds spaces, which a container
 * ID never does, so it never matches.
 */
import {
  appendFileSync,
  closeSync,
  constants,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { CtnetError, ErrorCode, hasErrno, log, makeDirs, readRegularFile, wrapError } from '../core/index.js';
import { type DirWatch, watchable, watchDir } from './dir-watch.js';
import { type LockOptions, lockFile } from './flock.js';
import {
  countOwnerRecords,
  cursorRecord,
  fileIdentity,
  leaseRecord,
  ownerLogHeader,
  type ParsedOwnerLog,
  parseOwnerLog,
  stampRecord,
} from './owner-log.js';

/** File names inside a lease directory: part of the on-host contract shared with the reference plugin. */
export const leaseDirFiles = {
  lock: 'lock',
  lastReservedPrefix: 'last_reserved_ip.',
  ownerIndex: 'ctnet-owners',
} as const;

export interface LeaseOwner {
  containerId: string;
  /** Undefined for legacy files that hold only the container ID. */
  ifname: string | undefined;
}

/** What the reference writes into a lease file. */
export function leaseContent(containerId: string, ifname: string): string {
  return `${containerId.trim()}\r\n${ifname}`;
}

export function parseLeaseContent(text: string): LeaseOwner {
  const t = text.trim();
  const i = t.indexOf('\r\n');
  return i < 0 ? { containerId: t, ifname: undefined } : { containerId: t.slice(0, i), ifname: t.slice(i + 2) };
}

/**
 * Cheap shape test first, then Node's own address check: this runs for every entry of the directory when a process
 * reads it, and the full parser (core/ip.ts) costs ~3 µs a name, 3 ms with a thousand leases.
 */
const leaseNameShape = /^(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$/;
export function isLeaseName(name: string): boolean {
  return leaseNameShape.test(name) && isIP(name) !== 0;
}

const isCursorName = (name: string): boolean => name.startsWith(leaseDirFiles.lastReservedPrefix);

function ioError(what: string, cause: unknown): CtnetError {
  return wrapError(what, cause, ErrorCode.io);
}

export function leaseDirPath(dataDir: string, network: string): string {
  return join(dataDir, network);
}

/** Names of the lease files in a directory (no lock, no reads): for STATUS and listings. */
export function listLeaseNames(dir: string): string[] {
  try {
    return readdirSync(dir).filter(isLeaseName);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return [];
    throw ioError(`list lease directory ${dir}`, err);
  }
}

/**
 * Every lease of a directory with its owner, read without the lock: a listing for people (`network inspect`). A
 * lease released between listing and reading, or a file that cannot be read as a lease, is left out.
 */
export function readLeaseOwners(dir: string): { ip: string; owner: LeaseOwner }[] {
  const out: { ip: string; owner: LeaseOwner }[] = [];
  for (const name of listLeaseNames(dir)) {
    try {
      const text = readText(dir, name);
      if (text !== undefined) out.push({ ip: name, owner: parseLeaseContent(text) });
    } catch {
      /* not a lease file we can read */
    }
  }
  return out;
}

function readText(dir: string, name: string): string | undefined {
  try {
    return readRegularFile(join(dir, name));
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return undefined;
    throw ioError(`read ${join(dir, name)}`, err);
  }
}

/** What a lease directory holds, as this process knows it. */
class DirView {
  /** name → trimmed file content, for the names whose owner is known. Its keys are a subset of `names`. */
  readonly owners = new Map<string, string>();
  /** cursor file → trimmed content. */
  readonly cursors = new Map<string, string>();
  /** owner text → names: kept once every name's owner is known (`complete`), so finding one owner is O(1). */
  private byOwner: Map<string, Set<string>> | undefined;

  constructor(readonly names: Set<string>) {}

  /** Builds the owner → names index; every name's owner must be known. */
  complete(): void {
    this.byOwner = new Map();
    for (const [name, content] of this.owners) this.index(content, name);
  }

  /** Names whose owner text is `content`, or undefined when the view is not complete. */
  namesOf(content: string): readonly string[] | undefined {
    if (!this.byOwner) return undefined;
    const names = this.byOwner.get(content);
    return names ? [...names] : [];
  }

  setOwner(name: string, content: string): void {
    const old = this.owners.get(name);
    this.names.add(name);
    if (old === content) return;
    this.owners.set(name, content);
    if (!this.byOwner) return;
    if (old !== undefined) this.unindex(old, name);
    this.index(content, name);
  }

  forget(name: string): void {
    this.names.delete(name);
    const old = this.owners.get(name);
    if (old === undefined) return;
    this.owners.delete(name);
    if (this.byOwner) this.unindex(old, name);
  }

  private index(content: string, name: string): void {
    const set = this.byOwner?.get(content);
    if (set) set.add(name);
    else this.byOwner?.set(content, new Set([name]));
  }

  private unindex(content: string, name: string): void {
    const set = this.byOwner?.get(content);
    set?.delete(name);
    if (set?.size === 0) this.byOwner?.delete(content);
  }
}

/** The owner log file as this process last wrote or read it. */
interface LogState {
  records: number;
  /** It must be written anew: missing, damaged, stale, or a write failed. */
  rewrite: boolean;
}

/** A lease directory kept between calls by a long-lived process. */
interface KeptDir {
  readonly key: string;
  readonly path: string;
  readonly view: DirView;
  readonly log: LogState;
  readonly watch: DirWatch;
  /** Entries another process changed while this one did not hold the lock: refreshed at the next call. */
  readonly dirty: Set<string>;
}

/**
 * Whether the owner log still describes the lease files it names (which names exist is the listing's business).
 * Lease files are only created, or replaced after a release, by an ADD, and every ADD (ctnet's or the reference's)
 * then writes the cursor of its range set. So a log whose cursor records match every cursor file has seen every
 * ADD since. Three checks, each for a case the others miss:
 * - the cursor's value: another writer's ADD left another address in it (the common case);
 * - the cursor file's identity (S record: inode, size, mtime, ctime): an ADD re-reserved the very address the
 *   cursor held (a requested IP, or the range wrapped) and wrote the same text. Its timestamps equal ours only if
 *   it ran within the clock tick (1–10 ms) in which we stat'ed the file; since Linux 6.13 (multigrain timestamps)
 *   not even then, because that stat makes the kernel give the next change a finer, later timestamp;
 * - the file the cursor names, re-read: in that same-tick case, the last ADD re-reserved exactly that address.
 * Not detected: other writers, within that one clock tick after we released the lock, release and re-reserve two
 * addresses, the last being the cursor's for the same attachment as before.
 */
function logVouchesFor(path: string, view: DirView, parsed: ParsedOwnerLog): boolean {
  if (parsed.cursors.size !== view.cursors.size) return false;
  for (const [file, value] of view.cursors) {
    if (parsed.cursors.get(file) !== value) return false;
    if (parsed.stamps.get(file) !== fileIdentity(join(path, file))) return false;
    const logged = parsed.owners.get(value);
    if (logged !== undefined && view.names.has(value) && readText(path, value)?.trim() !== logged) return false;
  }
  return true;
}

/** Reads a lease directory: its listing, its cursors, and what the owner log can vouch for. */
function readDir(path: string): { view: DirView; logState: LogState } {
  let entries: string[];
  try {
    entries = readdirSync(path);
  } catch (err) {
    throw ioError(`list lease directory ${path}`, err);
  }
  const view = new DirView(new Set(entries.filter(isLeaseName)));
  for (const e of entries) {
    if (!isCursorName(e)) continue;
    const content = readText(path, e);
    if (content !== undefined) view.cursors.set(e, content.trim());
  }
  const text = readText(path, leaseDirFiles.ownerIndex);
  // Missing (appending would lose its header) or damaged: the first save writes it whole.
  const parsed = text === undefined ? undefined : parseOwnerLog(text);
  if (!parsed) return { view, logState: { records: 0, rewrite: true } };
  const logState = { records: parsed.records, rewrite: false };
  if (!logVouchesFor(path, view, parsed)) {
    // Another writer (the reference plugin) allocated since ctnet last wrote: re-read what we need.
    log.debug({ dir: path }, 'lease owner index is stale; re-reading lease files');
    logState.rewrite = true;
    return { view, logState };
  }
  for (const [name, content] of parsed.owners) {
    if (view.names.has(name)) view.owners.set(name, content);
  }
  return { view, logState };
}

/** A lease directory opened under its lock. Get one through `withLeaseDir`. */
export class LeaseDir {
  /** Records to append to the owner log. */
  private pending: string[] = [];
  /** Entries this call changed itself (kept view only): their change notices are no news. */
  private readonly touched: Set<string> | undefined;

  private constructor(
    readonly path: string,
    private readonly view: DirView,
    private readonly logState: LogState,
    private readonly kept: KeptDir | undefined,
  ) {
    this.touched = kept ? new Set() : undefined;
  }

  /** Reads the directory for this call only. */
  static read(path: string): LeaseDir {
    const { view, logState } = readDir(path);
    return new LeaseDir(path, view, logState, undefined);
  }

  /** Reads the directory and keeps its view (complete: every owner read) under `key`, watched by `watch`. */
  static keep(key: string, path: string, watch: DirWatch): { dir: LeaseDir; kept: KeptDir } {
    const { view, logState } = readDir(path);
    const kept: KeptDir = { key, path, view, log: logState, watch, dirty: new Set() };
    const dir = new LeaseDir(path, view, logState, kept);
    for (const name of [...view.names]) dir.ownerText(name);
    view.complete();
    return { dir, kept };
  }

  /**
   * The kept view, brought up to date with the entries another process changed since this one last held the lock.
   * `path` is the one just locked and found to be the kept directory (another path to it than `kept.path` works).
   */
  static resume(path: string, kept: KeptDir, changed: Iterable<string>): LeaseDir {
    const dir = new LeaseDir(path, kept.view, kept.log, kept);
    for (const name of changed) dir.refresh(name);
    return dir;
  }

  /** Re-reads one entry another process changed, and logs what changed so the owner log stays true. */
  private refresh(name: string): void {
    if (isLeaseName(name)) {
      this.freshOwnerText(name);
    } else if (isCursorName(name)) {
      const text = readText(this.path, name);
      if (text === undefined) {
        // A cursor the log names is gone: only a rewrite makes the log vouch again.
        this.view.cursors.delete(name);
        this.logState.rewrite = true;
      } else {
        this.view.cursors.set(name, text.trim());
        this.recordCursor(name, text.trim());
      }
    } else if (name === leaseDirFiles.ownerIndex) {
      // Another ctnet process wrote the log: count its records, rewrite it if it is torn.
      const text = readText(this.path, name);
      const records = text === undefined ? undefined : countOwnerRecords(text);
      if (records === undefined) this.logState.rewrite = true;
      else this.logState.records = records;
    }
  }

  private record(line: string): void {
    this.pending.push(line);
  }

  private recordCursor(file: string, value: string): void {
    this.record(cursorRecord(file, value));
    const identity = fileIdentity(join(this.path, file));
    if (identity !== undefined) this.record(stampRecord(file, identity));
  }

  private readText(name: string): string | undefined {
    return readText(this.path, name);
  }

  leaseNames(): ReadonlySet<string> {
    return this.view.names;
  }

  has(name: string): boolean {
    return this.view.names.has(name);
  }

  /** The owner text of lease `name` (from the index, or read once). */
  ownerText(name: string): string | undefined {
    const known = this.view.owners.get(name);
    if (known !== undefined) return known;
    return this.freshOwnerText(name);
  }

  /** Re-reads lease `name` from disk: the truth, for decisions that delete or refuse. */
  freshOwnerText(name: string): string | undefined {
    const text = this.readText(name);
    if (text === undefined) {
      this.view.forget(name);
      return undefined;
    }
    const content = text.trim();
    if (this.view.owners.get(name) !== content) {
      this.view.setOwner(name, content);
      this.record(leaseRecord(name, content));
    }
    return content;
  }

  /**
   * Leases of (containerId, ifname): `exact` in the current format, `legacy` holding only the ID.
   * A kept view answers from its owner → names index (it knows every lease's owner and hears of every change, see
   * openLeaseDir); otherwise every name is looked at. Either way each candidate is re-read before it counts.
   */
  findOwned(containerId: string, ifname: string): { exact: string[]; legacy: string[] } {
    const exactText = leaseContent(containerId, ifname);
    const legacyText = containerId.trim();
    const exact: string[] = [];
    const legacy: string[] = [];
    const fromIndex = this.view.namesOf(exactText);
    const candidates = fromIndex
      ? [...fromIndex, ...(this.view.namesOf(legacyText) ?? [])]
      : [...this.view.names].filter((name) => {
          const t = this.ownerText(name);
          return t === exactText || t === legacyText;
        });
    for (const name of candidates) {
      const fresh = this.freshOwnerText(name);
      if (fresh === exactText) exact.push(name);
      else if (fresh === legacyText) legacy.push(name);
    }
    return { exact, legacy };
  }

  /** Creates lease `name` for (containerId, ifname) with O_EXCL; false when it already exists. */
  reserve(name: string, containerId: string, ifname: string): boolean {
    const file = join(this.path, name);
    let fd: number;
    try {
      fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (err) {
      if (hasErrno(err, 'EEXIST')) {
        // Learn its owner, so a kept view stays complete.
        this.freshOwnerText(name);
        return false;
      }
      throw ioError(`create lease file ${file}`, err);
    }
    this.touched?.add(name);
    const content = leaseContent(containerId, ifname);
    try {
      writeSync(fd, content);
    } catch (err) {
      closeSync(fd);
      this.unlinkQuiet(file);
      throw ioError(`write lease file ${file}`, err);
    }
    closeSync(fd);
    this.view.setOwner(name, content);
    this.record(leaseRecord(name, content));
    return true;
  }

  /** Deletes lease `name`; an already missing file is fine. */
  release(name: string): void {
    const file = join(this.path, name);
    this.touched?.add(name);
    try {
      unlinkSync(file);
    } catch (err) {
      if (!hasErrno(err, 'ENOENT')) throw ioError(`delete lease file ${file}`, err);
    }
    // No record needed: an entry whose file is gone is ignored when the log is loaded.
    this.view.forget(name);
  }

  private unlinkQuiet(file: string): void {
    try {
      unlinkSync(file);
    } catch {
      /* best effort while already failing */
    }
  }

  lastReserved(setIndex: number): string | undefined {
    return this.view.cursors.get(`${leaseDirFiles.lastReservedPrefix}${setIndex}`);
  }

  setLastReserved(setIndex: number, name: string): void {
    const file = `${leaseDirFiles.lastReservedPrefix}${setIndex}`;
    this.touched?.add(file);
    try {
      writeFileSync(join(this.path, file), name, { mode: 0o600 });
    } catch (err) {
      throw ioError(`write ${join(this.path, file)}`, err);
    }
    this.view.cursors.set(file, name);
    this.recordCursor(file, name);
  }

  /** Every lease with its owner (reads the files not yet known). */
  allOwners(): Map<string, string> {
    const out = new Map<string, string>();
    for (const name of [...this.view.names]) {
      const t = this.ownerText(name);
      if (t !== undefined) out.set(name, t);
    }
    return out;
  }

  /** Appends the new records to the owner log, or rewrites it when it is stale or mostly dead entries. */
  saveIndex(): void {
    const file = join(this.path, leaseDirFiles.ownerIndex);
    const state = this.logState;
    const live = this.view.owners.size + 2 * this.view.cursors.size;
    if (!state.rewrite && state.records + this.pending.length > 2 * live + 64) state.rewrite = true;
    if (!state.rewrite && this.pending.length === 0) return;
    this.touched?.add(leaseDirFiles.ownerIndex);
    try {
      if (state.rewrite) {
        const lines = [ownerLogHeader];
        for (const [name, content] of this.view.owners) lines.push(leaseRecord(name, content));
        for (const [name, value] of this.view.cursors) {
          lines.push(cursorRecord(name, value));
          const identity = fileIdentity(join(this.path, name));
          if (identity !== undefined) lines.push(stampRecord(name, identity));
        }
        // Temp file + rename: a reader under the lock never sees a half-written log.
        const tmpName = `${leaseDirFiles.ownerIndex}.${process.pid}.tmp`;
        const tmp = join(this.path, tmpName);
        this.touched?.add(tmpName);
        try {
          writeFileSync(tmp, `${lines.join('\n')}\n`, { mode: 0o600 });
          renameSync(tmp, file);
        } catch (err) {
          this.unlinkQuiet(tmp);
          throw err;
        }
        state.records = lines.length - 1;
      } else {
        appendFileSync(file, `${this.pending.join('\n')}\n`, { mode: 0o600 });
        state.records += this.pending.length;
      }
      this.pending = [];
      state.rewrite = false;
    } catch (err) {
      // The log only saves reads; a missing or stale one costs time, never correctness.
      log.warn({ err, file }, 'failed to write the lease owner index');
      state.rewrite = true;
    }
  }

  /**
   * Ends the call, still under the lock: saves the log; for a kept view, sets aside the changes someone else made
   * (none, unless a writer ignored the lock) and drops the view when it may no longer match the files.
   */
  close(consistent: boolean): void {
    this.saveIndex();
    const kept = this.kept;
    if (!kept) return;
    const changed = kept.watch.take();
    if (!consistent || changed === 'lost') {
      dropKept(kept);
      return;
    }
    for (const name of changed) if (!this.touched?.has(name)) kept.dirty.add(name);
  }
}

/**
 * Lease directories kept by this process, by device and inode (two paths to one directory share an entry, as they
 * share the lock file), least recently used first.
 */
const keptDirs = new Map<string, KeptDir>();
/**
 * Directories opened once (not kept), by key, with their path (an inode number is reused once its directory is
 * deleted): a second call is what shows a long-lived process.
 */
const openedOnce = new Map<string, string>();
const maxKeptDirs = 32;
let keeping = process.env.CTNET_IPAM_CACHE !== '0';

function dropKept(kept: KeptDir): void {
  kept.watch.close();
  if (keptDirs.get(kept.key) === kept) keptDirs.delete(kept.key);
}

function dirKey(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Opens `path` (its lock held). A process's first call reads the directory as a plugin binary would: a process that
 * makes one call should not pay for watching and indexing. From the second call on, the view is kept and watched.
 *
 * Why a kept view may be used without reading the directory again:
 * - every writer (ctnet, the reference host-local) changes a lease directory only while holding its flock, and the
 *   kernel queues the inotify event inside the very system call that makes a change, so once we hold the lock,
 *   every change since we last held it is in the queue and `take()` returns it (dir-watch.ts). No timestamp is
 *   involved: mtime and ctime come from a clock that ticks every 1–10 ms, and a change made right after ours can
 *   carry our change's timestamps;
 * - each changed entry is re-read (a lease's owner, a cursor's value, the log's size), the owner → names index is
 *   updated, and the owner log gets a record of what changed, so a plugin process that reads the log next can
 *   still believe it;
 * - the view is dropped, and the directory read anew, whenever the watch cannot vouch: the event queue overflowed,
 *   the directory was deleted or moved (also: the key is its device and inode, so a new directory at the same path
 *   is another entry), a call failed with an I/O error or an unexpected one (it may have changed a file without
 *   updating the view), or applying the changes failed;
 * - at the end of a call, the events of its own changes are set aside by name (it applied them to the view as it
 *   made them); any other event (a writer that ignored the lock) is applied at the next call;
 * - only local filesystems are kept (`watchable`): on a network filesystem another host's changes raise no event.
 */
function openLeaseDir(path: string): LeaseDir {
  const key = keeping ? dirKey(path) : undefined;
  if (key === undefined) return LeaseDir.read(path);
  const kept = keptDirs.get(key);
  if (kept) {
    const changed = kept.watch.take();
    if (changed !== 'lost') {
      keptDirs.delete(key);
      keptDirs.set(key, kept);
      for (const name of kept.dirty) changed.add(name);
      kept.dirty.clear();
      try {
        return LeaseDir.resume(path, kept, changed);
      } catch (err) {
        // The changes are taken: a view that did not apply them all must not be used again.
        dropKept(kept);
        throw err;
      }
    }
    dropKept(kept);
  }
  // (A kept entry under this key but another path was a deleted directory whose inode number is reused.)
  if (kept?.path !== path && openedOnce.get(key) !== path) {
    if (openedOnce.size >= 1024) openedOnce.clear();
    openedOnce.set(key, path);
    return LeaseDir.read(path);
  }
  if (!watchable(path)) return LeaseDir.read(path);
  // Watch first, then read: nothing can change in between unnoticed.
  const watch = watchDir(path);
  if (!watch) return LeaseDir.read(path);
  let opened: ReturnType<typeof LeaseDir.keep>;
  try {
    opened = LeaseDir.keep(key, path, watch);
  } catch (err) {
    watch.close();
    throw err;
  }
  const { dir, kept: entry } = opened;
  keptDirs.set(key, entry);
  if (keptDirs.size > maxKeptDirs) {
    const oldest = keptDirs.values().next().value;
    if (oldest) dropKept(oldest);
  }
  return dir;
}

/**
 * Makes this process forget lease directory `<dataDir>/<network>`: its next call reads it as a new process would.
 * For tests, which play a second process this way.
 */
export function forgetLeaseDir(dataDir: string, network: string): void {
  const path = leaseDirPath(dataDir, network);
  const key = dirKey(path);
  if (key === undefined) return;
  openedOnce.delete(key);
  const kept = keptDirs.get(key);
  if (kept) dropKept(kept);
}

/** Whether this process keeps the view of `<dataDir>/<network>` between calls (for tests). */
export function isLeaseDirKept(dataDir: string, network: string): boolean {
  const key = dirKey(leaseDirPath(dataDir, network));
  return key !== undefined && keptDirs.get(key)?.watch.holds() === true;
}

/** Turns keeping lease directories between calls on or off (CTNET_IPAM_CACHE=0 starts with it off). */
export function keepLeaseDirs(on: boolean): void {
  keeping = on;
  if (on) return;
  for (const kept of [...keptDirs.values()]) dropKept(kept);
  openedOnce.clear();
}

/**
 * Runs `fn` on the lease directory `<dataDir>/<network>` under its flock (created if missing).
 * The lock is held only for the file operations: callers parse config and read resolv.conf first.
 */
export async function withLeaseDir<T>(
  dataDir: string,
  network: string,
  fn: (dir: LeaseDir) => T,
  options: LockOptions = {},
): Promise<T> {
  const path = leaseDirPath(dataDir, network);
  try {
    makeDirs(path, 0o755);
  } catch (err) {
    throw ioError(`create lease directory ${path}`, err);
  }
  const lock = await lockFile(join(path, leaseDirFiles.lock), options);
  try {
    const dir = openLeaseDir(path);
    // A refusal (a duplicate, an exhausted range, a taken address) leaves the view matching the files; an I/O
    // failure or an unexpected error may not, and then the view is dropped.
    let consistent = false;
    try {
      const out = fn(dir);
      consistent = true;
      return out;
    } catch (err) {
      consistent = err instanceof CtnetError && err.code !== ErrorCode.io;
      throw err;
    } finally {
      dir.close(consistent);
    }
  } finally {
    lock.release();
  }
}
