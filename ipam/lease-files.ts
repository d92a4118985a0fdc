/**
 * The lease directory on disk: the reference host-local's format (backend/disk/backend.go), so one directory works
 * with ctnet and /usr/lib/cni/host-local in both directions. This module is the one codec of that format: the
 * plugin (through store.ts), `network inspect` and the debugger read and write lease files only through it.
 *
 *   <dataDir>/<network>/            mode 0755
 *     <ip>                          one per lease, named by the IP text, mode 0600,
 *                                   content "<containerID>\r\n<ifname>" (files of old runtimes: "<containerID>")
 *     last_reserved_ip.<setIndex>   the round-robin cursor of range set <setIndex>: the last address handed out
 *     lock                          flock(2) taken around every change (flock.ts)
 *     reserving.<ip>                ctnet only, inside one locked call: a lease being written (writeLease)
 *     ctnet-owners                  ctnet only: every lease's owner as of a directory stamp (the owner index, below)
 *
 * A `reserving.*` file found while holding the lock is the leftover of a writer killed mid-reserve; its name is no
 * address, so readers never take it for a lease, and the next locked call removes it. The reference ignores it too
 * (its DEL, matching on content, may remove one that holds the attachment's owner).
 */
import {
  appendFileSync,
  closeSync,
  constants,
  type Dirent,
  linkSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { type CtnetError, ErrorCode, hasErrno, isIpText, wrapError } from '../core/index.js';

/** File names inside a lease directory: part of the on-host contract shared with the reference plugin. */
export const leaseDirFiles = {
  lock: 'lock',
  cursorPrefix: 'last_reserved_ip.',
  reservingPrefix: 'reserving.',
  ownerIndex: 'ctnet-owners',
} as const;

export interface LeaseOwner {
  containerId: string;
  /** Undefined for legacy files that hold only the container ID. */
  ifname: string | undefined;
}

/** What the reference writes into a lease file. */
export function encodeOwner(containerId: string, ifname: string): string {
  return `${containerId.trim()}\r\n${ifname}`;
}

export function decodeOwner(text: string): LeaseOwner {
  const t = text.trim();
  const i = t.indexOf('\r\n');
  return i < 0 ? { containerId: t, ifname: undefined } : { containerId: t.slice(0, i), ifname: t.slice(i + 2) };
}

/** An owner for people: "<containerID> <ifname>". */
export function describeOwner(owner: LeaseOwner): string {
  return owner.ifname === undefined ? owner.containerId : `${owner.containerId} ${owner.ifname}`;
}

/**
 * Cheap shape test first, then core's address check without building the value: this runs for every entry of the
 * directory when a process reads it, and the full parser (parseIp) costs ~3 µs a name, 3 ms with a thousand leases.
 * (Not node:net's isIP: loading node:net and the stream modules it pulls in costs a plugin process ~2.5 ms.)
 */
const leaseNameShape = /^(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$/;
export function isLeaseName(name: string): boolean {
  return leaseNameShape.test(name) && isIpText(name);
}

export const cursorName = (setIndex: number): string => `${leaseDirFiles.cursorPrefix}${setIndex}`;

export function ioError(what: string, cause: unknown): CtnetError {
  return wrapError(what, cause, ErrorCode.io);
}

export function leaseDirPath(dataDir: string, network: string): string {
  return join(dataDir, network);
}

/**
 * The text of a small file, or undefined when it is gone. Opened without waiting (a FIFO in its place cannot hang
 * the caller, its read fails with EAGAIN) and read into `buf` with as few system calls as a lease allows: a full
 * directory read does this once per lease.
 */
export function readSmallFile(file: string, buf: Buffer = Buffer.alloc(512)): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return undefined;
    throw ioError(`read ${file}`, err);
  }
  try {
    let text = '';
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      text += buf.toString('utf8', 0, n);
      if (n < buf.length) return text;
    }
  } catch (err) {
    throw ioError(`read ${file}`, err);
  } finally {
    closeSync(fd);
  }
}

/** What a full read of the directory finds: every lease with its owner text (trimmed), and leftover temp files. */
export interface DirListing {
  owners: Map<string, string>;
  leftovers: string[];
}

/**
 * Lists the directory and reads every lease file. A file that cannot be read as a lease (not a regular file, or an
 * error reading it) is still a lease with an empty owner, so its address is never handed out.
 */
export function readLeaseDir(dir: string): DirListing {
  const owners = new Map<string, string>();
  const leftovers: string[] = [];
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    throw ioError(`list lease directory ${dir}`, err);
  }
  const buf = Buffer.alloc(512);
  for (const e of entries) {
    if (isLeaseName(e.name)) {
      let text: string | undefined = '';
      try {
        if (e.isFile()) text = readSmallFile(join(dir, e.name), buf);
      } catch {
        /* unreadable: a lease nobody can claim */
      }
      if (text !== undefined) owners.set(e.name, text.trim());
    } else if (e.name.startsWith(leaseDirFiles.reservingPrefix)) {
      leftovers.push(e.name);
    }
  }
  return { owners, leftovers };
}

/**
 * The owner index, `ctnet-owners`: what a full read found, so that the next process need not read every lease file.
 * Append-only, written under the lock; the last record of a name wins:
 *
 *   ctnet-owners 2                 header
 *   + <ip> <owner text as JSON>    lease <ip> holds this owner
 *   - <ip>                         lease <ip> is gone
 *   = <stamp>                      the records above are the whole directory while its stamp is <stamp>
 *
 * It counts only when its last line is a stamp equal to the directory's stamp now (store.ts says why that is safe);
 * a torn append never ends in one. The reference compares every file's content with a container ID: this one's
 * holds spaces, which an ID never does, so it never matches.
 */
export const ownerIndexHeader = 'ctnet-owners 2';
export const ownerRecord = (ip: string, text: string | undefined): string =>
  text === undefined ? `- ${ip}` : `+ ${ip} ${JSON.stringify(text)}`;
export const stampRecord = (stamp: string): string => `= ${stamp}`;

/** The owner index's leases and record count when its last line is stamp `stamp`; undefined otherwise. */
export function readOwnerIndex(dir: string, stamp: string): { owners: Map<string, string>; records: number } | undefined {
  let text: string | undefined;
  try {
    text = readSmallFile(join(dir, leaseDirFiles.ownerIndex), Buffer.alloc(64 * 1024));
  } catch {
    return undefined;
  }
  const last = `\n${stampRecord(stamp)}\n`;
  if (text === undefined || !text.startsWith(`${ownerIndexHeader}\n`) || !text.endsWith(last)) return undefined;
  const owners = new Map<string, string>();
  const lines = text.slice(ownerIndexHeader.length + 1, text.length - 1).split('\n');
  for (const line of lines) {
    const kind = line[0];
    if (kind === '=') continue;
    const sp = line.indexOf(' ', 2);
    const ip = sp < 0 ? line.slice(2) : line.slice(2, sp);
    if (kind === '-') owners.delete(ip);
    else if (kind === '+' && sp > 0) {
      try {
        const owner = JSON.parse(line.slice(sp + 1)) as unknown;
        if (typeof owner !== 'string') return undefined;
        owners.set(ip, owner);
      } catch {
        return undefined;
      }
    } else return undefined;
  }
  return { owners, records: lines.length };
}

/** Appends records to the owner index. */
export function appendOwnerIndex(dir: string, records: string[]): void {
  appendFileSync(join(dir, leaseDirFiles.ownerIndex), `${records.join('\n')}\n`, { mode: 0o600 });
}

/** Writes the owner index anew (temp file + rename: a reader never sees half of it), without a stamp yet. */
export function writeOwnerIndex(dir: string, owners: ReadonlyMap<string, string>): void {
  const lines = [ownerIndexHeader];
  for (const [ip, text] of owners) lines.push(ownerRecord(ip, text));
  const tmp = join(dir, `${leaseDirFiles.ownerIndex}.tmp`);
  writeFileSync(tmp, `${lines.join('\n')}\n`, { mode: 0o600 });
  renameSync(tmp, join(dir, leaseDirFiles.ownerIndex));
}

/** Names of the lease files in a directory (no lock, no reads): for STATUS. */
export function listLeaseNames(dir: string): string[] {
  try {
    return readdirSync(dir).filter(isLeaseName);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return [];
    throw ioError(`list lease directory ${dir}`, err);
  }
}

/**
 * Every lease of a directory with its owner, read without the lock: a listing for people (`network inspect`, the
 * debugger). A missing directory has no leases.
 */
export function listLeases(dir: string): { ip: string; owner: LeaseOwner }[] {
  let listing: DirListing;
  try {
    listing = readLeaseDir(dir);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return [];
    throw err;
  }
  return [...listing.owners].map(([ip, text]) => ({ ip, owner: decodeOwner(text) }));
}

/**
 * Creates lease `name` holding `content`, or returns false when it exists. Atomic: the content is written to
 * `reserving.<name>` first and hard-linked into place (link(2) fails with EEXIST, as O_EXCL would), so the lease file
 * appears whole or not at all, and a writer killed at any point leaves no empty lease behind. Call under the lock.
 */
export function writeLease(dir: string, name: string, content: string): boolean {
  const file = join(dir, name);
  const tmp = join(dir, `${leaseDirFiles.reservingPrefix}${name}`);
  // A leftover may be a second link to a lease (a writer killed after its link): unlink it, never write into it.
  removeQuiet(tmp);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    throw ioError(`create lease file ${file}`, err);
  }
  try {
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if (hasErrno(err, 'EEXIST')) return false;
    throw ioError(`create lease file ${file}`, err);
  } finally {
    removeQuiet(tmp);
  }
}

/** Deletes lease (or leftover) `name`; an already missing file is fine. */
export function removeLeaseFile(dir: string, name: string): void {
  try {
    unlinkSync(join(dir, name));
  } catch (err) {
    if (!hasErrno(err, 'ENOENT')) throw ioError(`delete lease file ${join(dir, name)}`, err);
  }
}

function removeQuiet(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* missing, or already failing */
  }
}

/** The cursor of range set `setIndex` (trimmed), or undefined. */
export function readCursor(dir: string, setIndex: number): string | undefined {
  return readSmallFile(join(dir, cursorName(setIndex)))?.trim();
}

export function writeCursor(dir: string, setIndex: number, ip: string): void {
  const file = join(dir, cursorName(setIndex));
  try {
    writeFileSync(file, ip, { mode: 0o600 });
  } catch (err) {
    throw ioError(`write ${file}`, err);
  }
}
