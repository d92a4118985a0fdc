/** Address parsing for rule rendering: every address that reaches rule text goes through here. */
import { CtnetError, ErrorCode, type Family, formatIp, type IpAddr, parseIp } from '../core/index.js';

export type { Family } from '../core/index.js';

export interface ParsedCidr {
  family: Family;
  /** The address in canonical text (IPv6 compressed, lower case). */
  address: string;
  prefix: number;
  /** The subnet, canonical: '10.22.0.0/24', 'fd00::/64'. */
  subnet: string;
  /** The single host: '10.22.0.5/32', 'fd00::5/128'. */
  host: string;
}

export function addressFamily(address: string): Family | undefined {
  return parseIp(address)?.family;
}

/** Canonical text of a bare address, or a CtnetError (code 7) naming it. */
export function canonicalAddress(address: string, what = 'address'): { family: Family; address: string } {
  const ip = parseIp(address);
  if (ip) return { family: ip.family, address: formatIp(ip) };
  throw new CtnetError(ErrorCode.invalidConfig, `invalid ${what} ${JSON.stringify(address)}: not an IP address`);
}

/** Parses 'a.b.c.d/n' or 'x::y/n' (a bare address means a single host). */
export function parseCidr(text: string): ParsedCidr {
  if (typeof text !== 'string') {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid address ${JSON.stringify(text)}: not a string`);
  }
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const { family, address } = canonicalAddress(addrText);
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (!(prefix >= 0 && prefix <= max)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid address ${JSON.stringify(text)}: bad prefix length`);
  }
  const n = (parseIp(address) as IpAddr).value;
  const bits = BigInt(max);
  const mask = ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n);
  const netText = formatIp({ family, value: n & mask });
  return { family, address, prefix, subnet: `${netText}/${prefix}`, host: `${address}/${max}` };
}
