/**
 * The one address-with-prefix type: IPAM ranges, netlink messages, firewall rules and network
 * subnets all parse, compare and print CIDRs here, on core/ip.ts's BigInt addresses, so IPv4 and
 * IPv6 share one code path and an address prints the same everywhere.
 */
import { CtnetError, ErrorCode } from './errors.js';
import { bitsOf, type Family, formatIp, type IpAddr, parseIp } from './ip.js';

export interface Cidr {
  /** The address as written (may have host bits set: an interface address). */
  readonly addr: IpAddr;
  readonly prefix: number;
}

/** Parses "addr/prefix"; undefined when malformed or the prefix is out of range for the family. */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!addr || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bitsOf(addr.family)) return undefined;
  return { addr, prefix };
}

/** "addr/prefix", or a bare address as the single host (/32, /128): the forms rules and routes take. */
export function parseCidrOrHost(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.includes('/')) return parseCidr(text);
  const addr = parseIp(text);
  return addr && hostCidr(addr);
}

/** As parseCidrOrHost, or a CtnetError (code 7, invalid config) naming `what` and the text. */
export function requireCidr(text: string, what = 'address'): Cidr {
  const c = parseCidrOrHost(text);
  if (!c) throw new CtnetError(ErrorCode.invalidConfig, `invalid ${what} ${JSON.stringify(text)}: not an address/prefix`);
  return c;
}

/** An address, or a CtnetError (code 7, invalid config) naming `what` and the text. */
export function requireIp(text: string, what = 'address'): IpAddr {
  const ip = parseIp(text);
  if (!ip) throw new CtnetError(ErrorCode.invalidConfig, `invalid ${what} ${JSON.stringify(text)}: not an IP address`);
  return ip;
}

/** The family of an address or CIDR text; undefined when it is neither. */
export function familyOf(text: string): Family | undefined {
  return parseCidrOrHost(text)?.addr.family;
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.addr)}/${c.prefix}`;
}

export function hostCidr(ip: IpAddr): Cidr {
  return { addr: ip, prefix: bitsOf(ip.family) };
}

function hostMask(family: Family, prefix: number): bigint {
  return (1n << BigInt(bitsOf(family) - prefix)) - 1n;
}

export function networkOf(c: Cidr): IpAddr {
  return { family: c.addr.family, value: c.addr.value & ~hostMask(c.addr.family, c.prefix) };
}

/** The subnet the CIDR is in, host bits cleared: 10.1.2.3/24 → 10.1.2.0/24. */
export function subnetOf(c: Cidr): Cidr {
  return { addr: networkOf(c), prefix: c.prefix };
}

/** The last address of the prefix (the IPv4 broadcast address). */
export function lastOf(c: Cidr): IpAddr {
  return { family: c.addr.family, value: networkOf(c).value | hostMask(c.addr.family, c.prefix) };
}

export function contains(c: Cidr, ip: IpAddr): boolean {
  return ip.family === c.addr.family && ip.value >= networkOf(c).value && ip.value <= lastOf(c).value;
}

export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.addr);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.addr.family === b.addr.family && networkOf(a).value <= lastOf(b).value && networkOf(b).value <= lastOf(a).value;
}

export function offset(ip: IpAddr, by: bigint): IpAddr {
  return { family: ip.family, value: ip.value + by };
}

export function sameIp(a: IpAddr | undefined, b: IpAddr | undefined): boolean {
  return a !== undefined && b !== undefined && a.family === b.family && a.value === b.value;
}

/** Accepts "10.0.0.5" or "10.0.0.5/24" (the forms the reference accepts for requested IPs). */
export function parseIpOrCidr(text: string): IpAddr | undefined {
  return parseIp(text) ?? parseCidr(text)?.addr;
}

/** Network byte order, as netlink carries an address (4 or 16 bytes). */
export function ipBytes(ip: IpAddr): Buffer {
  const b = Buffer.alloc(ip.family === 4 ? 4 : 16);
  let v = ip.value;
  for (let i = b.length - 1; i >= 0; i--, v >>= 8n) b[i] = Number(v & 0xffn);
  return b;
}

export function ipFromBytes(b: Uint8Array): IpAddr {
  let value = 0n;
  for (const byte of b) value = (value << 8n) | BigInt(byte);
  return { family: b.length === 4 ? 4 : 6, value };
}

/** `10.0.0.5:80`, `[fd00::5]:80`: an address and port as DNAT targets, URLs and Docker's `port` write them. */
export function formatHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
