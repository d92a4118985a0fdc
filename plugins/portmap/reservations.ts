/**
 * Host-port reservations: a host port is a node-wide resource, so ADD claims (protocol, host address, port) before
 * writing rules and fails when another attachment holds an overlapping claim (cni-user-issues #11). No lock and no
 * scan of other containers: each claim is one file created with O_EXCL in the port's own directory, then that
 * directory (the few claims on this one port) is listed for overlaps. Two overlapping claims racing each other both
 * see the other and both back off; a double allocation is impossible. Layout under `stateDir` (on-host contract):
 *
 *   ports/<proto>-<port>/<scope>   one file per claim; scope = "any" (both families), "any4", "any6" or the address;
 *                                  content {network, containerId, ifname, hostIP}
 *   attachments/<hash>.json        what one attachment claimed: {network, containerId, ifname, ports: [...]}
 *
 * The attachment record is written before the claims it lists, so a process killed mid-ADD leaves a record that DEL
 * or GC uses to remove its claims; removal only ever deletes claim files whose content names the attachment itself.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, ErrorCode, hasErrno, hostIPsOverlap, wrapError } from '../../core/index.js';
import { type AttachmentKey, attachmentHash } from '../../iptables/index.js';

export interface PortClaim {
  protocol: string;
  hostPort: number;
  /** '' = every address of both families; '0.0.0.0' / '::' = every address of one family; else one address. */
  hostIP: string;
}

interface Holder extends AttachmentKey {
  hostIP: string;
}

export interface AttachmentRecord extends AttachmentKey {
  ports: PortClaim[];
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return undefined;
    if (err instanceof SyntaxError) return undefined; // a claim file caught between create and write
    throw wrapError(`read reservation file ${path}`, err, ErrorCode.io);
  }
}

/** Atomic replace (write a temp file, rename), so a crash never leaves half a record. */
function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

const scopeName = (hostIP: string) => (hostIP === '' ? 'any' : hostIP === '0.0.0.0' ? 'any4' : hostIP === '::' ? 'any6' : hostIP);
const scopeHostIP = (name: string) => (name === 'any' ? '' : name === 'any4' ? '0.0.0.0' : name === 'any6' ? '::' : name);

const sameAttachment = (a: AttachmentKey, b: AttachmentKey) =>
  a.network === b.network && a.containerId === b.containerId && a.ifname === b.ifname;

function conflict(p: PortClaim, holder: Holder): CtnetError {
  const where = (ip: string) => (ip ? `${ip.includes(':') ? `[${ip}]` : ip}:` : '');
  return new CtnetError(
    ErrorCode.portConflict,
    `failed to publish host port ${where(p.hostIP)}${p.hostPort}/${p.protocol}: already published by container "${holder.containerId}" (network "${holder.network}", interface "${holder.ifname}"${holder.hostIP ? `, host address ${holder.hostIP}` : ''})`,
    { hint: 'choose another host port, or remove the other container first' },
  );
}

export class ReservationStore {
  constructor(readonly dir: string) {}

  private portDir(p: { protocol: string; hostPort: number }): string {
    return join(this.dir, 'ports', `${p.protocol}-${p.hostPort}`);
  }
  private slot(p: PortClaim): string {
    return join(this.portDir(p), scopeName(p.hostIP));
  }
  private recordFile(key: AttachmentKey): string {
    return join(this.dir, 'attachments', `${attachmentHash(key)}.json`);
  }

  /** What `key` holds now (undefined: nothing). A single file read. */
  held(key: AttachmentKey): PortClaim[] | undefined {
    return readJson<AttachmentRecord>(this.recordFile(key))?.ports;
  }

  /** Creates the claim file; false when another attachment holds exactly this slot (its holder in `clash`). */
  private createSlot(key: AttachmentKey, p: PortClaim): Holder | undefined {
    const holder: Holder = { network: key.network, containerId: key.containerId, ifname: key.ifname, hostIP: p.hostIP };
    for (let attempt = 0; ; attempt++) {
      try {
        mkdirSync(this.portDir(p), { recursive: true, mode: 0o700 });
        writeFileSync(this.slot(p), JSON.stringify(holder), { flag: 'wx', mode: 0o600 });
        return undefined;
      } catch (err) {
        // ENOENT: a concurrent release removed the (then empty) port directory between our mkdir and create.
        if (hasErrno(err, 'ENOENT') && attempt < 5) continue;
        if (!hasErrno(err, 'EEXIST')) throw wrapError(`create port reservation ${this.slot(p)}`, err, ErrorCode.io);
        const current = readJson<Holder>(this.slot(p));
        if (current && sameAttachment(current, key)) return undefined;
        if (!current && attempt < 5) continue;
        return current ?? { ...holder, containerId: '(unknown)' };
      }
    }
  }

  /** Removes the claim file if (and only if) `key` holds it; drops the port directory when it became empty. */
  private removeSlot(key: AttachmentKey, p: PortClaim): void {
    const current = readJson<Holder>(this.slot(p));
    if (current && !sameAttachment(current, key)) return;
    rmSync(this.slot(p), { force: true });
    try {
      rmdirSync(this.portDir(p));
    } catch (err) {
      if (!hasErrno(err, 'ENOTEMPTY', 'ENOENT', 'EEXIST')) throw wrapError(`remove ${this.portDir(p)}`, err, ErrorCode.io);
    }
  }

  /** Another attachment's claim on the same port whose scope overlaps `p`, if any. */
  private overlapping(key: AttachmentKey, p: PortClaim): Holder | undefined {
    let names: string[];
    try {
      names = readdirSync(this.portDir(p));
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return undefined;
      throw wrapError(`list ${this.portDir(p)}`, err, ErrorCode.io);
    }
    for (const name of names) {
      if (name === scopeName(p.hostIP) || !hostIPsOverlap(scopeHostIP(name), p.hostIP)) continue;
      const holder = readJson<Holder>(join(this.portDir(p), name));
      if (holder && !sameAttachment(holder, key)) return holder;
    }
    return undefined;
  }

  /**
   * Claims `ports` for `key`, replacing what `key` held before. Throws code 101 naming the port and the holder when
   * another attachment holds an overlapping claim; then nothing of `key`'s new claims remains.
   */
  async claim(key: AttachmentKey, ports: PortClaim[]): Promise<void> {
    try {
      mkdirSync(join(this.dir, 'attachments'), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw wrapError(`create the port reservation directory ${this.dir}`, err, ErrorCode.io);
    }
    const previous = this.held(key) ?? [];
    const same = (a: PortClaim, b: PortClaim) => a.protocol === b.protocol && a.hostPort === b.hostPort && a.hostIP === b.hostIP;
    const stale = previous.filter((old) => !ports.some((p) => same(old, p)));
    writeJson(this.recordFile(key), { ...key, ports: [...stale, ...ports] } satisfies AttachmentRecord);
    const created: PortClaim[] = [];
    try {
      for (const p of ports) {
        const holder = this.createSlot(key, p);
        if (holder) throw conflict(p, holder);
        created.push(p);
      }
      for (const p of ports) {
        const holder = this.overlapping(key, p);
        if (holder) throw conflict(p, holder);
      }
    } catch (err) {
      for (const p of created) if (!previous.some((old) => same(old, p))) this.removeSlot(key, p);
      if (previous.length) writeJson(this.recordFile(key), { ...key, ports: previous } satisfies AttachmentRecord);
      else rmSync(this.recordFile(key), { force: true });
      throw err;
    }
    for (const p of stale) this.removeSlot(key, p);
    writeJson(this.recordFile(key), { ...key, ports } satisfies AttachmentRecord);
  }

  /** Releases everything `key` holds; returns what it held (nothing: undefined). Idempotent. */
  async release(key: AttachmentKey): Promise<PortClaim[] | undefined> {
    this.removeDeadWritersTemps(key);
    const held = this.held(key);
    if (!held) return undefined;
    for (const p of held) this.removeSlot(key, p);
    rmSync(this.recordFile(key), { force: true });
    return held;
  }

  /**
   * The temp files of `key`'s record (see writeJson) whose writer is gone: a writer killed between its write and its
   * rename leaves one, which nothing else would ever remove. A live writer's is left to it.
   */
  private removeDeadWritersTemps(key: AttachmentKey): void {
    const dir = join(this.dir, 'attachments');
    const prefix = `${attachmentHash(key)}.json.`;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = name.startsWith(prefix) ? /^(\d+)\.tmp$/.exec(name.slice(prefix.length))?.[1] : undefined;
      if (pid && !existsSync(`/proc/${pid}`)) rmSync(join(dir, name), { force: true });
    }
  }

  /** Releases the claims of attachments of `network` not in `valid`; returns the released records. */
  async gc(network: string, valid: AttachmentKey[]): Promise<AttachmentRecord[]> {
    const keep = new Set(valid.map((k) => attachmentHash({ ...k, network })));
    let names: string[];
    try {
      names = readdirSync(join(this.dir, 'attachments'));
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return [];
      throw wrapError(`list port reservations in ${this.dir}`, err, ErrorCode.io);
    }
    const released: AttachmentRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json') && !keep.has(n.slice(0, -5)))) {
      const record = readJson<AttachmentRecord>(join(this.dir, 'attachments', name));
      if (record?.network !== network) continue;
      await this.release(record);
      released.push(record);
    }
    return released;
  }
}
