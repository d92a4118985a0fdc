/**
 * The little CIDR arithmetic the network commands need (parse, contains, overlap, nth address),
 * on BigInt so IPv4 and IPv6 share one code path.
 */
import { CtnetError, ErrorCode, formatIp as formatCoreIp, parseIp as parseCoreIp } from '../core/index.js';

export interface Cidr {
  family: 4 | 6;
  /** Network address (host bits cleared). */
  base: bigint;
  prefix: number;
  /** As written by the user. */
  text: string;
}

const bits = (family: 4 | 6) => (family === 4 ? 32 : 128);

export function parseIp(text: string): { family: 4 | 6; value: bigint } {
  const ip = parseCoreIp(text);
  if (!ip) throw new CtnetError(ErrorCode.invalidConfig, `invalid IP address ${JSON.stringify(text)}`);
  return ip;
}

export function formatIp(family: 4 | 6, value: bigint): string {
  return formatCoreIp({ family, value });
}

export function parseCidr(text: string): Cidr {
  const [addr = '', prefixText, extra] = text.split('/');
  const prefix = Number(prefixText);
  let ip: ReturnType<typeof parseIp>;
  try {
    ip = parseIp(addr);
  } catch {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid subnet ${JSON.stringify(text)}: not an address/prefix`);
  }
  if (extra !== undefined || prefixText === undefined || !/^\d+$/.test(prefixText) || prefix > bits(ip.family)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid subnet ${JSON.stringify(text)}: bad prefix length`);
  }
  const hostBits = BigInt(bits(ip.family) - prefix);
  return { family: ip.family, base: (ip.value >> hostBits) << hostBits, prefix, text };
}

export function lastAddress(c: Cidr): bigint {
  return c.base + (1n << BigInt(bits(c.family) - c.prefix)) - 1n;
}

export function cidrString(c: Cidr): string {
  return `${formatIp(c.family, c.base)}/${c.prefix}`;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.base <= lastAddress(b) && b.base <= lastAddress(a);
}

export function contains(c: Cidr, ip: string): boolean {
  const p = parseIp(ip);
  return p.family === c.family && p.value >= c.base && p.value <= lastAddress(c);
}

export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return (
    outer.family === inner.family &&
    inner.prefix >= outer.prefix &&
    inner.base >= outer.base &&
    lastAddress(inner) <= lastAddress(outer)
  );
}

/** The n-th address of the subnet (1 = the usual gateway). */
export function nthAddress(c: Cidr, n: number): string {
  return formatIp(c.family, c.base + BigInt(n));
}
