/**
 * Addresses as rule text: every address that reaches a rule is parsed with core's CIDR type and
 * printed back canonically (IPv6 compressed, lower case), as iptables-save and nft list print it,
 * so rules we write and rules we read compare as text.
 */
import { type Family, formatCidr, formatIp, hostCidr, requireCidr, requireIp, subnetOf } from '../core/index.js';

export type { Family } from '../core/index.js';

/** One address with prefix, in the three spellings rules use. */
export interface ParsedCidr {
  family: Family;
  /** The address in canonical text. */
  address: string;
  prefix: number;
  /** The subnet, canonical: '10.22.0.0/24', 'fd00::/64'. */
  subnet: string;
  /** The single host: '10.22.0.5/32', 'fd00::5/128'. */
  host: string;
}

/** Canonical text of a bare address, or a CtnetError (code 7) naming it. */
export function canonicalAddress(address: string, what = 'address'): { family: Family; address: string } {
  const ip = requireIp(address, what);
  return { family: ip.family, address: formatIp(ip) };
}

/** Parses 'a.b.c.d/n' or 'x::y/n' (a bare address means a single host); a CtnetError (code 7) otherwise. */
export function parseCidr(text: string): ParsedCidr {
  const c = requireCidr(text);
  return {
    family: c.addr.family,
    address: formatIp(c.addr),
    prefix: c.prefix,
    subnet: formatCidr(subnetOf(c)),
    host: formatCidr(hostCidr(c.addr)),
  };
}
