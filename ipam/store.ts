/**
 * The lease directory, in the reference host-local on-disk format (backend/disk/backend.go), so
 * one directory works with ctnet and /usr/lib/cni/host-local in both directions:
 *
 *   <dataDir>/<network>/            mode 0755
 *     <ip>                          one per lease, named by the IP text, mode 0600,
 *                                   content "<containerID>\r\n<ifname>" (old files: "<containerID>")
 *     last_reserved_ip.<setIndex>   the round-robin cursor of range set <setIndex>
 *     lock                          flock(2) taken around every allocation and release
 *     ctnet-owners.json             ctnet only: see below
 *
 * The reference reads every lease file on every ADD (to refuse a second lease for one attachment)
 * and on every DEL. ctnet keeps an owner index (`ctnet-owners.json`: file name → content) so an
 * ADD lists names only and reads just the files it has not seen. The index is a cache, never the
 * truth: entries count only for names present in the listing, and the whole index is dropped when
 * a `last_reserved_ip.*` cursor differs from what ctnet last wrote (some other writer allocated).
 * Anything a release or GC deletes is re-read from disk first, so a stale entry can never delete
 * someone else's lease. The reference ignores the file (its content never equals a container ID,
 * which must start with a letter or digit).
 */
import {
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { type CtnetError, ErrorCode, hasErrno, log, wrapError } from '../core/index.js';
import { parseIp } from './address.js';
import { type LockOptions, lockFile } from './flock.js';

/** File names inside a lease directory: part of the on-host contract shared with the reference plugin. */
export const leaseDirFiles = {
  lock: 'lock',
  lastReservedPrefix: 'last_reserved_ip.',
  ownerIndex: 'ctnet-owners.json',
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

export function isLeaseName(name: string): boolean {
  return parseIp(name) !== undefined;
}

interface OwnerIndex {
  version: 1;
  owners: Record<string, string>;
  cursors: Record<string, string>;
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
  private dirty = false;

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
    const text = this.readText(leaseDirFiles.ownerIndex);
    let index: OwnerIndex | undefined;
    try {
      index = text === undefined ? undefined : (JSON.parse(text) as OwnerIndex);
    } catch {
      index = undefined;
    }
    if (index?.version !== 1 || typeof index.owners !== 'object' || typeof index.cursors !== 'object') {
      this.dirty = text !== undefined || this.names.size > 0;
      return;
    }
    const cursorNames = Object.keys(index.cursors);
    const sameCursors =
      cursorNames.length === this.cursors.size && cursorNames.every((k) => this.cursors.get(k) === index.cursors[k]);
    if (!sameCursors) {
      // Another writer (the reference plugin) allocated since ctnet last wrote the index: re-read everything once.
      log.debug({ dir: this.path }, 'lease owner index is stale; re-reading lease files');
      this.dirty = true;
      return;
    }
    for (const [name, content] of Object.entries(index.owners)) {
      if (this.names.has(name) && typeof content === 'string') this.owners.set(name, content);
    }
    if (this.owners.size !== Object.keys(index.owners).length) this.dirty = true;
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
    this.dirty = true;
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
      this.dirty = true;
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
    this.dirty = true;
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
    this.names.delete(name);
    if (this.owners.delete(name)) this.dirty = true;
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
    this.dirty = true;
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

  /** Writes the owner index if it changed (temp file + rename: never a torn index). */
  saveIndex(): void {
    if (!this.dirty) return;
    const index: OwnerIndex = {
      version: 1,
      owners: Object.fromEntries([...this.owners].filter(([n]) => this.names.has(n))),
      cursors: Object.fromEntries(this.cursors),
    };
    const file = join(this.path, leaseDirFiles.ownerIndex);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(index), { mode: 0o600 });
      renameSync(tmp, file);
      this.dirty = false;
    } catch (err) {
      this.unlinkQuiet(tmp);
      // The index only saves reads; a missing one costs time, not correctness.
      log.warn({ err, file }, 'failed to write the lease owner index');
    }
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
