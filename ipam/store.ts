/**
 * The lease directory, in the reference host-local on-disk format (backend/disk/backend.go), so
 * one directory works with ctnet and /usr/lib/cni/host-local in both directions:
 *
 *   <dataDir>/<network>/            mode 0755
 *     <ip>                          one per lease, named by the IP text, mode 0600,
 *                                   content "<containerID>\r\n<ifname>" (old files: "<containerID>")
 *     last_reserved_ip.<setIndex>   the round-robin cursor of range set <setIndex>
 *     lock                          flock(2) taken around every allocation and release
 *     ctnet-owners                  ctnet only: see below
 *
 * The reference reads every lease file on every ADD (to refuse a second lease for one attachment)
 * and on every DEL. ctnet keeps an owner index so an ADD lists names only and reads just the files
 * it has not seen. `ctnet-owners` is an append-only log written under the lock: a header line, then
 * `L <ip> <content as JSON>` for each lease ctnet made or read and `C <cursor file> <ip>` for each
 * cursor ctnet wrote; the last record wins. An ADD appends two short lines (O(1)); the log is
 * compacted when it grows past twice the live entries.
 *
 * The index is a cache, never the truth: entries count only for names present in the listing; the
 * whole index is dropped when a `last_reserved_ip.*` cursor differs from what ctnet last wrote
 * (another writer, e.g. the reference plugin, allocated) or the log does not end in a newline (a
 * torn append). Anything a release or GC deletes is re-read from disk first, so a stale entry can
 * never delete someone else's lease. The reference compares every file's content with container
 * IDs; this file's content holds spaces, which a container ID never does, so it never matches.
 */
import {
  appendFileSync,
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type CtnetError, ErrorCode, hasErrno, log, wrapError } from '../core/index.js';
import { type LockOptions, lockFile } from './flock.js';

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
 * Cheap shape test first, then Node's own address check: this runs for every entry of the directory on every
 * ADD and DEL, and the full parser (address.ts) costs ~3 µs a name, 3 ms with a thousand leases.
 */
const leaseNameShape = /^(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$/;
export function isLeaseName(name: string): boolean {
  return leaseNameShape.test(name) && isIP(name) !== 0;
}

const indexHeader = 'ctnet-owners 1';

/** The owner log as parsed (last record wins, names not yet checked against the listing). */
interface ParsedIndex {
  owners: Map<string, string>;
  cursors: Map<string, string>;
  records: number;
}

/**
 * The last owner log each lease directory had in this process, keyed by the file's identity. A long-lived process
 * (the CNI daemon) then parses the log only when another process changed it: with a thousand leases the parse is
 * ~2 ms of every ADD and DEL. Any change by anyone else changes size, inode or mtime, and misses.
 */
const parsedIndexes = new Map<string, { identity: string; index: ParsedIndex }>();

function fileIdentity(file: string): string | undefined {
  try {
    const st = statSync(file, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

function parseIndex(text: string): ParsedIndex | undefined {
  const lines = text.split('\n');
  if (lines[0] !== indexHeader || !text.endsWith('\n')) return undefined;
  const index: ParsedIndex = { owners: new Map(), cursors: new Map(), records: lines.length - 2 };
  for (const line of lines) if (!applyRecord(index, line)) return undefined;
  return index;
}

/** Applies one log line; false when the line is damaged (the log must then be rewritten). */
function applyRecord(index: ParsedIndex, line: string): boolean {
  const kind = line[0];
  const sp = line.indexOf(' ', 2);
  if (sp < 0 || line[1] !== ' ') return true;
  const name = line.slice(2, sp);
  const value = line.slice(sp + 1);
  if (kind === 'C') index.cursors.set(name, value);
  else if (kind === 'L') {
    try {
      const content = JSON.parse(value) as unknown;
      if (typeof content !== 'string') return false;
      index.owners.set(name, content);
    } catch {
      return false;
    }
  }
  return true;
}

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

/** A lease directory opened under its lock. Get one through `withLeaseDir`. */
export class LeaseDir {
  private readonly names: Set<string>;
  /** name → trimmed file content, for the names whose owner is known. */
  private readonly owners = new Map<string, string>();
  private readonly cursors = new Map<string, string>();
  /** Records to append to the index; `rewrite` when the log must be written anew. */
  private pending: string[] = [];
  private rewrite = false;
  private indexRecords = 0;
  /** The log as loaded, kept to cache what it holds after this instance appends to it. */
  private parsed: ParsedIndex | undefined;

  private constructor(readonly path: string) {
    let entries: string[];
    try {
      entries = readdirSync(path);
    } catch (err) {
      throw ioError(`list lease directory ${path}`, err);
    }
    this.names = new Set(entries.filter(isLeaseName));
    for (const e of entries) {
      if (!e.startsWith(leaseDirFiles.lastReservedPrefix)) continue;
      const content = this.readText(e);
      if (content !== undefined) this.cursors.set(e, content.trim());
    }
    this.loadIndex();
  }

  static open(path: string): LeaseDir {
    return new LeaseDir(path);
  }

  private loadIndex(): void {
    const file = join(this.path, leaseDirFiles.ownerIndex);
    const identity = fileIdentity(file);
    const cached = parsedIndexes.get(this.path);
    let index: ParsedIndex | undefined;
    if (identity !== undefined && cached?.identity === identity) {
      index = cached.index;
    } else {
      const text = this.readText(leaseDirFiles.ownerIndex);
      // Missing (appending would lose its header) or damaged: the first save writes it whole.
      index = text === undefined ? undefined : parseIndex(text);
    }
    if (!index) {
      parsedIndexes.delete(this.path);
      this.rewrite = true;
      return;
    }
    this.parsed = index;
    this.indexRecords = index.records;
    const sameCursors =
      index.cursors.size === this.cursors.size && [...index.cursors].every(([k, v]) => this.cursors.get(k) === v);
    if (!sameCursors) {
      // Another writer (the reference plugin) allocated since ctnet last wrote: re-read what we need.
      log.debug({ dir: this.path }, 'lease owner index is stale; re-reading lease files');
      this.rewrite = true;
      return;
    }
    for (const [name, content] of index.owners) {
      if (this.names.has(name)) this.owners.set(name, content);
    }
  }

  private record(line: string): void {
    this.pending.push(line);
  }

  private readText(name: string): string | undefined {
    try {
      return readFileSync(join(this.path, name), 'utf8');
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return undefined;
      throw ioError(`read ${join(this.path, name)}`, err);
    }
  }

  leaseNames(): ReadonlySet<string> {
    return this.names;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /** The owner text of lease `name` (from the index, or read once). */
  ownerText(name: string): string | undefined {
    const known = this.owners.get(name);
    if (known !== undefined) return known;
    const text = this.readText(name);
    if (text === undefined) {
      this.names.delete(name);
      return undefined;
    }
    const content = text.trim();
    this.owners.set(name, content);
    this.record(`L ${name} ${JSON.stringify(content)}`);
    return content;
  }

  /** Re-reads lease `name` from disk: the truth, for decisions that delete or refuse. */
  freshOwnerText(name: string): string | undefined {
    const text = this.readText(name);
    if (text === undefined) {
      this.forget(name);
      return undefined;
    }
    const content = text.trim();
    if (this.owners.get(name) !== content) {
      this.owners.set(name, content);
      this.record(`L ${name} ${JSON.stringify(content)}`);
    }
    return content;
  }

  /**
   * Leases of (containerId, ifname): `exact` in the current format, `legacy` holding only the ID.
   * Both are verified against the files.
   */
  findOwned(containerId: string, ifname: string): { exact: string[]; legacy: string[] } {
    const exactText = leaseContent(containerId, ifname);
    const legacyText = containerId.trim();
    const exact: string[] = [];
    const legacy: string[] = [];
    for (const name of [...this.names]) {
      const t = this.ownerText(name);
      if (t !== exactText && t !== legacyText) continue;
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
        this.names.add(name);
        return false;
      }
      throw ioError(`create lease file ${file}`, err);
    }
    const content = leaseContent(containerId, ifname);
    try {
      writeSync(fd, content);
    } catch (err) {
      closeSync(fd);
      this.unlinkQuiet(file);
      throw ioError(`write lease file ${file}`, err);
    }
    closeSync(fd);
    this.names.add(name);
    this.owners.set(name, content);
    this.record(`L ${name} ${JSON.stringify(content)}`);
    return true;
  }

  /** Deletes lease `name`; an already missing file is fine. */
  release(name: string): void {
    const file = join(this.path, name);
    try {
      unlinkSync(file);
    } catch (err) {
      if (!hasErrno(err, 'ENOENT')) throw ioError(`delete lease file ${file}`, err);
    }
    this.forget(name);
  }

  private forget(name: string): void {
    // No record needed: an entry whose file is gone is ignored when the index is loaded.
    this.names.delete(name);
    this.owners.delete(name);
  }

  private unlinkQuiet(file: string): void {
    try {
      unlinkSync(file);
    } catch {
      /* best effort while already failing */
    }
  }

  lastReserved(setIndex: number): string | undefined {
    return this.cursors.get(`${leaseDirFiles.lastReservedPrefix}${setIndex}`);
  }

  setLastReserved(setIndex: number, name: string): void {
    const file = `${leaseDirFiles.lastReservedPrefix}${setIndex}`;
    try {
      writeFileSync(join(this.path, file), name, { mode: 0o600 });
    } catch (err) {
      throw ioError(`write ${join(this.path, file)}`, err);
    }
    this.cursors.set(file, name);
    this.record(`C ${file} ${name}`);
  }

  /** Every lease with its owner (reads the files not yet known). */
  allOwners(): Map<string, string> {
    const out = new Map<string, string>();
    for (const name of [...this.names]) {
      const t = this.ownerText(name);
      if (t !== undefined) out.set(name, t);
    }
    return out;
  }

  /** Appends the new index records, or rewrites the log when it is stale or mostly dead entries. */
  saveIndex(): void {
    const file = join(this.path, leaseDirFiles.ownerIndex);
    const live = this.owners.size + this.cursors.size;
    if (!this.rewrite && this.indexRecords + this.pending.length > 2 * live + 64) this.rewrite = true;
    let written: ParsedIndex | undefined;
    try {
      if (this.rewrite) {
        const lines = [indexHeader];
        for (const [name, content] of this.owners) if (this.names.has(name)) lines.push(`L ${name} ${JSON.stringify(content)}`);
        for (const [name, value] of this.cursors) lines.push(`C ${name} ${value}`);
        // Temp file + rename: a reader under the lock never sees a half-written log.
        const tmp = `${file}.${process.pid}.tmp`;
        try {
          writeFileSync(tmp, `${lines.join('\n')}\n`, { mode: 0o600 });
          renameSync(tmp, file);
        } catch (err) {
          this.unlinkQuiet(tmp);
          throw err;
        }
        this.indexRecords = lines.length - 1;
        written = { owners: new Map(), cursors: new Map(), records: this.indexRecords };
        for (const line of lines) applyRecord(written, line);
      } else if (this.pending.length > 0) {
        appendFileSync(file, `${this.pending.join('\n')}\n`, { mode: 0o600 });
        this.indexRecords += this.pending.length;
        written = this.parsed;
        if (written) {
          for (const line of this.pending) applyRecord(written, line);
          written.records = this.indexRecords;
        }
      } else {
        written = this.parsed;
      }
      this.pending = [];
      this.rewrite = false;
    } catch (err) {
      // The index only saves reads; a missing or stale one costs time, never correctness.
      log.warn({ err, file }, 'failed to write the lease owner index');
      written = undefined;
    }
    const identity = written && fileIdentity(file);
    if (written && identity) parsedIndexes.set(this.path, { identity, index: written });
    else parsedIndexes.delete(this.path);
  }
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
    mkdirSync(path, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw ioError(`create lease directory ${path}`, err);
  }
  const lock = await lockFile(join(path, leaseDirFiles.lock), options);
  try {
    const dir = LeaseDir.open(path);
    try {
      return fn(dir);
    } finally {
      dir.saveIndex();
    }
  } finally {
    lock.release();
  }
}
