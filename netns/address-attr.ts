/**
 * Addresses as rtnetlink carries them: IP addresses and CIDRs from callers parsed with core's CIDR type (a refusal
 * names the call), bytes in network order in attributes, canonical text back out; MAC addresses likewise.
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

export function macOrThrow(mac: string, what: string): Buffer {
  const bytes = parseMac(mac);
  if (!bytes) throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: "${mac}" is not a MAC address`);
  return bytes;
}

export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function parseMac(mac: string): Buffer | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) return undefined;
  return Buffer.from(mac.split(':').map((x) => Number.parseInt(x, 16)));
}
