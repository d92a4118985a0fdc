/**
 * Addresses as rtnetlink carries them: text from callers parsed with core's CIDR type (a refusal
 * names the call), bytes in network order in attributes, canonical text back out.
 */
import {
  type Cidr,
  CtnetError,
  ErrorCode,
  formatIp,
  type IpAddr,
  ipBytes,
  ipFromBytes,
  parseCidrOrHost,
  parseIp,
} from '../core/index.js';

/** A zone (fe80::1%eth0) names an interface, not part of the address. */
function withoutZone(text: string): string {
  return typeof text === 'string' ? text.replace(/%.*$/, '') : text;
}

/** "addr/prefix" or a bare address (a single host), or CtnetError code 7 "failed to <what>: …". */
export function cidrOrThrow(text: string, what: string): Cidr {
  const cidr = parseCidrOrHost(withoutZone(text));
  if (!cidr) throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: "${text}" is not a valid CIDR`);
  return cidr;
}

export function ipOrThrow(text: string, what: string): IpAddr {
  const ip = parseIp(withoutZone(text));
  if (!ip) throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: "${text}" is not a valid IP address`);
  return ip;
}

export function ipAttr(text: string, what: string): Buffer {
  return ipBytes(ipOrThrow(text, what));
}

export function ipText(bytes: Uint8Array): string {
  return formatIp(ipFromBytes(bytes));
}
