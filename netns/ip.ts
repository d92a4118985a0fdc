/**
 * IP address text ↔ bytes, small and dependency-free (this runs on every plugin call).
 */
import { CtnetError, ErrorCode, formatIp, parseIp as parseAddress } from '../core/index.js';

export interface ParsedCidr {
  family: 4 | 6;
  bytes: Buffer;
  prefixLen: number;
}

export function ipToBytes(ip: string): Buffer | undefined {
  // A zone (fe80::1%eth0) names an interface, not part of the address.
  const parsed = parseAddress(ip.replace(/%.*$/, ''));
  if (!parsed) return undefined;
  const b = Buffer.alloc(parsed.family === 4 ? 4 : 16);
  let v = parsed.value;
  for (let i = b.length - 1; i >= 0; i--, v >>= 8n) b[i] = Number(v & 0xffn);
  return b;
}

export function bytesToIp(b: Buffer): string {
  let value = 0n;
  for (const byte of b) value = (value << 8n) | BigInt(byte);
  return formatIp({ family: b.length === 4 ? 4 : 6, value });
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
