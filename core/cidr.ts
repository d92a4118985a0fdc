/**
 * CIDR arithmetic on BigInt values for IPAM (ranges, masks, +1). Parsing and formatting of single
 * addresses is core/ip.ts (Go's rules: the reference plugin's lease file names).
 */
import { bitsOf, type Family, formatIp, type IpAddr, parseIp } from '../core/index.js';

export { bitsOf, type Family, formatIp, type IpAddr, parseIp } from '../core/index.js';

export interface Cidr {
  /** The address as written (may have host bits set). */
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

export function formatCidr(ip: IpAddr, prefix: number): string {
  return `${formatIp(ip)}/${prefix}`;
}

function hostMask(family: Family, prefix: number): bigint {
  return (1n << BigInt(bitsOf(family) - prefix)) - 1n;
}

export function networkOf(c: Cidr): IpAddr {
  return { family: c.addr.family, value: c.addr.value & ~hostMask(c.addr.family, c.prefix) };
}

/** The last address of the prefix (the IPv4 broadcast address). */
export function lastOf(c: Cidr): IpAddr {
  return { family: c.addr.family, value: networkOf(c).value | hostMask(c.addr.family, c.prefix) };
}

export function contains(c: Cidr, ip: IpAddr): boolean {
  return ip.family === c.addr.family && ip.value >= networkOf(c).value && ip.value <= lastOf(c).value;
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
