/**
 * IP address text ↔ bytes, small and dependency-free (this runs on every plugin call).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { CtnetError, ErrorCode } from '../core/index.js';

export interface ParsedCidr {
  family: 4 | 6;
  bytes: Buffer;
  prefixLen: number;
}

export function ipToBytes(ip: string): Buffer | undefined {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) return undefined;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const text = ip
    .replace(/%.*$/, '')
    .replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a, b, c, d) =>
      [(Number(a) << 8) | Number(b), (Number(c) << 8) | Number(d)].map((g) => g.toString(16)).join(':'),
    );
  const [head, rest] = text.split('::') as [string, string | undefined];
  const parse = (s: string) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const left = parse(head);
  const right = parse(rest ?? '');
  const missing = 8 - left.length - right.length;
  const groups = rest === undefined ? [...left, ...right] : [...left, ...new Array<number>(missing).fill(0), ...right];
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(g, i * 2);
  return b;
}

export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  // RFC 5952: compress the longest run (≥ 2) of zero groups, the first one on ties.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function parseCidr(cidr: string, what: string): ParsedCidr {
  const slash = cidr.indexOf('/');
  const ip = slash < 0 ? cidr : cidr.slice(0, slash);
  const bytes = ipToBytes(ip);
  const max = bytes?.length === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : cidr.slice(slash + 1);
  const prefixLen = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (!bytes || !(prefixLen >= 0 && prefixLen <= max)) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: "${cidr}" is not a valid CIDR`);
  }
  return { family: bytes.length === 4 ? 4 : 6, bytes, prefixLen };
}

export function parseIp(ip: string, what: string): { family: 4 | 6; bytes: Buffer } {
  const bytes = ipToBytes(ip);
  if (!bytes) throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: "${ip}" is not a valid IP address`);
  return { family: bytes.length === 4 ? 4 : 6, bytes };
}

/** Zeroes the host bits (a route's destination is a network). */
export function maskBytes(bytes: Buffer, prefixLen: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLen - i * 8));
    out[i] = (out[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** The IPv4 broadcast address of a network (all host bits set). */
export function broadcastBytes(bytes: Buffer, prefixLen: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLen - i * 8));
    out[i] = (out[i] ?? 0) | (0xff >> keep);
  }
  return out;
}
