/**
 * Host-port reservations: a host port is a node-wide resource, so ADD claims (protocol, host address, port) in a
 * lock-protected store before writing rules and fails when another attachment holds an overlapping claim
 * (cni-user-issues #11). Layout under `stateDir` (on-host contract):
 *
 *   lock                        flock held for the few file reads and writes of one claim or release
 *   ports/<proto>-<port>.json   every claim on that port: [{hostIP, network, containerId, ifname}]
 *   attachments/<hash>.json     what one attachment claimed: {network, containerId, ifname, ports: [...]}
 *
 * A claim touches only the files of its own ports, so its cost does not grow with the number of containers.
 * The kernel drops the flock when a holder dies; a claim whose ADD died before its DEL is removed by GC.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, ErrorCode, hasErrno, wrapError } from '../../core/index.js';
import { lockFile } from '../../ipam/index.js';
import { type AttachmentKey, attachmentHash, parseHostIP } from '../../iptables/index.js';

export interface PortClaim {
  protocol: string;
  hostPort: number;
  /** '' = every address of both families; '0.0.0.0' / '::' = every address of one family; else one address. */
  hostIP: string;
}

interface Holder extends AttachmentKey {
  hostIP: string;
}

interface AttachmentRecord extends AttachmentKey {
  ports: PortClaim[];
}

const lockTimeoutMs = 10_000;

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return undefined;
    throw wrapError(`read reservation file ${path}`, err, ErrorCode.io);
  }
}

/** Atomic replace (write a temp file, rename), so a crash never leaves half a file. */
function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** Whether two host-address scopes (see PortClaim.hostIP) can receive the same packet. */
export function hostIPsOverlap(a: string, b: string): boolean {
  const scope = (ip: string) => {
    if (!ip) return { family: undefined, address: undefined };
    return parseHostIP(ip);
  };
  const x = scope(a);
  const y = scope(b);
  if (x.family !== undefined && y.family !== undefined && x.family !== y.family) return false;
  if (x.address && y.address) return x.address === y.address;
  return true;
}

const sameAttachment = (a: AttachmentKey, b: AttachmentKey) =>
  a.network === b.network && a.containerId === b.containerId && a.ifname === b.ifname;

export class ReservationStore {
  constructor(readonly dir: string) {}

  private portFile(protocol: string, port: number): string {
    return join(this.dir, 'ports', `${protocol}-${port}.json`);
  }
  private attachmentFile(key: AttachmentKey): string {
    return join(this.dir, 'attachments', `${attachmentHash(key)}.json`);
  }

  private async locked<T>(fn: () => T): Promise<T> {
    try {
      mkdirSync(join(this.dir, 'ports'), { recursive: true, mode: 0o700 });
      mkdirSync(join(this.dir, 'attachments'), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw wrapError(`create the port reservation directory ${this.dir}`, err, ErrorCode.io);
    }
    const lock = await lockFile(join(this.dir, 'lock'), { timeoutMs: lockTimeoutMs });
    try {
      return fn();
    } finally {
      lock.release();
    }
  }

  /** What `key` holds now (undefined: nothing). No lock: a single atomic file read. */
  held(key: AttachmentKey): PortClaim[] | undefined {
    return readJson<AttachmentRecord>(this.attachmentFile(key))?.ports;
  }

  /**
   * Claims `ports` for `key`, replacing what `key` held before. Throws code 101 naming the port and the holder when
   * another attachment holds an overlapping claim; then nothing changes.
   */
  async claim(key: AttachmentKey, ports: PortClaim[]): Promise<void> {
    await this.locked(() => {
      const previous = readJson<AttachmentRecord>(this.attachmentFile(key))?.ports ?? [];
      const touched = new Map<string, Holder[]>();
      const load = (protocol: string, port: number) => {
        const file = this.portFile(protocol, port);
        let holders = touched.get(file);
        if (!holders) {
          holders = (readJson<Holder[]>(file) ?? []).filter((h) => !sameAttachment(h, key));
          touched.set(file, holders);
        }
        return holders;
      };
      for (const p of previous) load(p.protocol, p.hostPort);
      for (const p of ports) {
        const holders = load(p.protocol, p.hostPort);
        const clash = holders.find((h) => hostIPsOverlap(h.hostIP, p.hostIP));
        if (clash) {
          const where = (ip: string) => (ip ? `${ip.includes(':') ? `[${ip}]` : ip}:` : '');
          throw new CtnetError(
            ErrorCode.portConflict,
            `failed to publish host port ${where(p.hostIP)}${p.hostPort}/${p.protocol}: already published by container "${clash.containerId}" (network "${clash.network}", interface "${clash.ifname}"${clash.hostIP ? `, host address ${clash.hostIP}` : ''})`,
            { hint: 'choose another host port, or remove the other container first' },
          );
        }
        holders.push({ network: key.network, containerId: key.containerId, ifname: key.ifname, hostIP: p.hostIP });
      }
      for (const [file, holders] of touched) {
        if (holders.length) writeJson(file, holders);
        else rmSync(file, { force: true });
      }
      writeJson(this.attachmentFile(key), { ...key, ports } satisfies AttachmentRecord);
    });
  }

  /** Releases everything `key` holds; returns what it held (nothing: undefined). Idempotent. */
  async release(key: AttachmentKey): Promise<PortClaim[] | undefined> {
    if (!this.held(key)) return undefined;
    return this.locked(() => this.releaseLocked(key));
  }

  private releaseLocked(key: AttachmentKey): PortClaim[] | undefined {
    const record = readJson<AttachmentRecord>(this.attachmentFile(key));
    if (!record) return undefined;
    for (const p of record.ports) {
      const file = this.portFile(p.protocol, p.hostPort);
      const holders = (readJson<Holder[]>(file) ?? []).filter((h) => !sameAttachment(h, key));
      if (holders.length) writeJson(file, holders);
      else rmSync(file, { force: true });
    }
    rmSync(this.attachmentFile(key), { force: true });
    return record.ports;
  }

  /** Releases the claims of attachments of `network` not in `valid`; returns the released attachments. */
  async gc(network: string, valid: AttachmentKey[]): Promise<AttachmentRecord[]> {
    const keep = new Set(valid.map((k) => attachmentHash({ ...k, network })));
    let names: string[];
    try {
      names = readdirSync(join(this.dir, 'attachments'));
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return [];
      throw wrapError(`list port reservations in ${this.dir}`, err, ErrorCode.io);
    }
    const candidates = names
      .filter((n) => n.endsWith('.json') && !keep.has(n.slice(0, -5)))
      .map((n) => readJson<AttachmentRecord>(join(this.dir, 'attachments', n)))
      .filter((r): r is AttachmentRecord => r?.network === network);
    if (!candidates.length) return [];
    return this.locked(() => candidates.filter((r) => this.releaseLocked(r) !== undefined));
  }
}
