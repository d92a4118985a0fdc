/**
 * IPAM's store: the interface the allocator and the IPAM operations (leases.ts) work through, and its one
 * implementation over the lease directory (lease-files.ts holds the disk format).
 *
 * What a call knows of a directory before reading it, and why that is safe:
 * - A call reads the whole directory (every lease file, as the reference does on every ADD and DEL) unless the
 *   directory's stamp (device, inode, size, mtime, ctime) is the one a state was saved with: the state this store
 *   object kept in memory (the agent keeps one store for its life), else the owner index `ctnet-owners` that every
 *   ctnet call leaves stamped (a plugin process makes one call). So the agent pays one stat(2) per call, and a
 *   plugin process one read of the index instead of one read per lease.
 * - Every writer (ctnet, the reference host-local) changes a lease directory only under its flock, and every change
 *   that adds or removes a lease creates, links or unlinks an entry, which changes the directory's ctime (and, on
 *   tmpfs, its size). Cursors are written in place and are re-read by every call instead.
 * - The stamp is taken under the lock at the end of each call, after its last change of the directory, and
 *   stat'ing it marks the ctime as seen: from Linux 6.13 on ("multigrain timestamps", ext4, xfs, btrfs, tmpfs) the
 *   next change of that directory gets a finer timestamp than the one seen, even within one clock tick. tmpfs gives
 *   link(2) and unlink(2) the coarse time of the file instead, but they change the directory's size, and a link by
 *   ctnet always follows a create in the same call. Elsewhere (older kernels, other or network filesystems) a change
 *   within the clock tick (1–10 ms) of the last call could keep the stamp, so there no state is kept or indexed:
 *   every call reads the directory.
 * - Nothing is deleted or refused on what was remembered: DEL, GC and a refusal re-read the lease file first.
 *   A lease file rewritten in place (no writer does that) is seen at the next full read.
 */
import { statfsSync, statSync } from 'node:fs';
import { release as kernelRelease } from 'node:os';
import { join } from 'node:path';
import { CtnetError, ErrorCode, log, makeDirs } from '../core/index.js';
import { type LockOptions, lockFile } from './flock.js';
import {
  appendOwnerIndex,
  decodeOwner,
  encodeOwner,
  ioError,
  type LeaseOwner,
  leaseDirFiles,
  leaseDirPath,
  listLeaseNames,
  ownerRecord,
  readCursor,
  readLeaseDir,
  readOwnerIndex,
  readSmallFile,
  removeLeaseFile,
  stampRecord,
  writeCursor,
  writeLease,
  writeOwnerIndex,
} from './lease-files.js';

/** One call on a network's leases, made under its lock: what the allocator and the IPAM operations need. */
export interface Leases {
  readonly path: string;
  /** Whether address `ip` (its text form) is leased. */
  has(ip: string): boolean;
  /** The owner of lease `ip` read from disk now (the truth, for decisions that delete or refuse). */
  ownerOf(ip: string): LeaseOwner | undefined;
  /** Leases of (containerId, ifname): `exact` in the current format, `legacy` holding only the ID; each re-read. */
  ownedBy(containerId: string, ifname: string): { exact: string[]; legacy: string[] };
  /** Every lease with its owner, as known at the start of the call. */
  all(): Map<string, LeaseOwner>;
  /** Creates lease `ip` for (containerId, ifname), whole or not at all; false when it already exists. */
  reserve(ip: string, containerId: string, ifname: string): boolean;
  /** Deletes lease `ip`; an already missing one is fine. */
  release(ip: string): void;
  /** The round-robin cursor of range set `setIndex`. */
  lastReserved(setIndex: number): string | undefined;
  setLastReserved(setIndex: number, ip: string): void;
}

export interface LeaseStore {
  /** Runs `fn` on the leases of `<dataDir>/<network>` under its lock (created if missing). */
  update<T>(dataDir: string, network: string, fn: (leases: Leases) => T, options?: LockOptions): Promise<T>;
  /** The leased addresses, without the lock or any file read: for STATUS. */
  names(dataDir: string, network: string): string[];
}

/** What a lease directory holds: lease → owner text (trimmed file content), and owner text → leases. */
class DirState {
  readonly byOwner = new Map<string, Set<string>>();
  /** Owner index records of the changes not yet appended to `ctnet-owners`. */
  pending: string[] = [];
  /** Records in `ctnet-owners`, or undefined when it must be written anew (missing, stale, damaged). */
  records: number | undefined;
  /** The stamp of the directory when this state was last known to match it. */
  stamp = '';

  constructor(
    readonly owners: Map<string, string>,
    records: number | undefined,
  ) {
    this.records = records;
    for (const [name, text] of owners) this.index(text, name);
  }

  set(name: string, text: string): void {
    const old = this.owners.get(name);
    if (old === text) return;
    if (old !== undefined) this.unindex(old, name);
    this.owners.set(name, text);
    this.index(text, name);
    this.pending.push(ownerRecord(name, text));
  }

  delete(name: string): void {
    const old = this.owners.get(name);
    if (old === undefined) return;
    this.owners.delete(name);
    this.unindex(old, name);
    this.pending.push(ownerRecord(name, undefined));
  }

  namesOf(text: string): string[] {
    return [...(this.byOwner.get(text) ?? [])];
  }

  private index(text: string, name: string): void {
    const set = this.byOwner.get(text);
    if (set) set.add(name);
    else this.byOwner.set(text, new Set([name]));
  }

  private unindex(text: string, name: string): void {
    const set = this.byOwner.get(text);
    set?.delete(name);
    if (set?.size === 0) this.byOwner.delete(text);
  }
}

/** A lease directory opened under its lock. */
class LockedDir implements Leases {
  private readonly buf = Buffer.alloc(512);

  constructor(
    readonly path: string,
    private readonly state: DirState,
  ) {}

  has(ip: string): boolean {
    return this.state.owners.has(ip);
  }

  /** Re-reads lease `ip` into the state: its owner text, '' when unreadable, undefined when gone. */
  private fresh(ip: string): string | undefined {
    let text: string | undefined;
    try {
      text = readSmallFile(join(this.path, ip), this.buf)?.trim();
    } catch {
      // Not a file we can read (a directory, a FIFO, an I/O error): a lease nobody can claim, as for the reference.
      text = '';
    }
    if (text === undefined) this.state.delete(ip);
    else this.state.set(ip, text);
    return text;
  }

  ownerOf(ip: string): LeaseOwner | undefined {
    const text = this.fresh(ip);
    return text === undefined ? undefined : decodeOwner(text);
  }

  ownedBy(containerId: string, ifname: string): { exact: string[]; legacy: string[] } {
    const exactText = encodeOwner(containerId, ifname);
    const legacyText = containerId.trim();
    const exact: string[] = [];
    const legacy: string[] = [];
    for (const name of [...this.state.namesOf(exactText), ...this.state.namesOf(legacyText)]) {
      const text = this.fresh(name);
      if (text === exactText) exact.push(name);
      else if (text === legacyText) legacy.push(name);
    }
    return { exact, legacy };
  }

  all(): Map<string, LeaseOwner> {
    return new Map([...this.state.owners].map(([name, text]) => [name, decodeOwner(text)]));
  }

  reserve(ip: string, containerId: string, ifname: string): boolean {
    const content = encodeOwner(containerId, ifname);
    if (!writeLease(this.path, ip, content)) {
      // Learn its owner, so the state stays true.
      this.fresh(ip);
      return false;
    }
    this.state.set(ip, content.trim());
    return true;
  }

  release(ip: string): void {
    removeLeaseFile(this.path, ip);
    this.state.delete(ip);
  }

  lastReserved(setIndex: number): string | undefined {
    return readCursor(this.path, setIndex);
  }

  setLastReserved(setIndex: number, ip: string): void {
    writeCursor(this.path, setIndex, ip);
  }
}

/** What identifies one state of a directory's entries (see the top of this file). */
function stampOf(path: string): string {
  const st = statSync(path, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** statfs f_type of the local filesystems with multigrain timestamps: ext4, xfs, btrfs, tmpfs. */
const multigrainFilesystems = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994]);

/** Whether the kernel gives this store's directories multigrain timestamps (Linux 6.13 and later). */
function multigrainKernel(): boolean {
  const [major = 0, minor = 0] = kernelRelease()
    .split('.')
    .map((x) => Number.parseInt(x, 10));
  return major > 6 || (major === 6 && minor >= 13);
}

/** The lease directories of one process, on disk; remembers up to `maxKept` of them between calls. */
export class DiskLeaseStore implements LeaseStore {
  /** Directory path → its state when this store last released its lock; least recently used first. */
  private readonly kept = new Map<string, DirState>();
  private readonly multigrain = multigrainKernel();

  constructor(private readonly maxKept = 32) {}

  names(dataDir: string, network: string): string[] {
    return listLeaseNames(leaseDirPath(dataDir, network));
  }

  /** Whether the next call on `<dataDir>/<network>` will use what this store kept instead of reading (for tests). */
  keeps(dataDir: string, network: string): boolean {
    const path = leaseDirPath(dataDir, network);
    try {
      return this.kept.get(path)?.stamp === stampOf(path);
    } catch {
      return false;
    }
  }

  async update<T>(dataDir: string, network: string, fn: (leases: Leases) => T, options: LockOptions = {}): Promise<T> {
    const path = leaseDirPath(dataDir, network);
    try {
      makeDirs(path, 0o755);
    } catch (err) {
      throw ioError(`create lease directory ${path}`, err);
    }
    const lock = await lockFile(join(path, leaseDirFiles.lock), options);
    try {
      const state = this.open(path);
      // A refusal (a duplicate, an exhausted range, a taken address) leaves the state matching the files; an I/O
      // failure or an unexpected error may not, and then it is forgotten.
      let consistent = false;
      try {
        const out = fn(new LockedDir(path, state));
        consistent = true;
        return out;
      } catch (err) {
        consistent = err instanceof CtnetError && err.code !== ErrorCode.io;
        throw err;
      } finally {
        if (consistent) this.close(path, state);
      }
    } finally {
      lock.release();
    }
  }

  /** Whether stamps of `path` change with every change of its entries (see the top of this file). */
  private trustsStamps(path: string): boolean {
    return this.multigrain && multigrainFilesystems.has(Number(statfsSync(path).type));
  }

  /**
   * The directory's state, under the lock: the one kept, or the owner index's, while the directory's stamp is the
   * one they were saved with; else read in full.
   */
  private open(path: string): DirState {
    const kept = this.kept.get(path);
    this.kept.delete(path);
    const stamp = stampOf(path);
    if (kept?.stamp === stamp) return kept;
    if (this.trustsStamps(path)) {
      const index = readOwnerIndex(path, stamp);
      if (index) {
        const state = new DirState(index.owners, index.records);
        state.stamp = stamp;
        return state;
      }
    }
    const { owners, leftovers } = readLeaseDir(path);
    // Under the lock, a temp file is a killed writer's: remove it.
    for (const name of leftovers) removeLeaseFile(path, name);
    return new DirState(owners, undefined);
  }

  /**
   * Ends a call that left the state matching the files, still under the lock: brings the owner index up to date
   * and stamps it and the state with the directory's stamp now. A failure costs the next call a full read, never
   * correctness.
   */
  private close(path: string, state: DirState): void {
    try {
      if (!this.trustsStamps(path)) return;
      const live = state.owners.size;
      if (state.records === undefined || state.records + state.pending.length > 2 * live + 64) {
        writeOwnerIndex(path, state.owners);
        state.records = live;
        state.pending = [];
      }
      // Taken after every change of the directory (the rewrite renames into it); appending changes only the file.
      const stamp = stampOf(path);
      if (state.pending.length > 0 || stamp !== state.stamp) {
        appendOwnerIndex(path, [...state.pending, stampRecord(stamp)]);
        state.records += state.pending.length + 1;
        state.pending = [];
      }
      state.stamp = stamp;
    } catch (err) {
      log.warn({ err, dir: path }, 'failed to write the lease owner index');
      return;
    }
    this.kept.set(path, state);
    if (this.kept.size > this.maxKept) {
      const oldest = this.kept.keys().next().value;
      if (oldest !== undefined) this.kept.delete(oldest);
    }
  }
}
