/** Address parsing for rule rendering: every address that reaches rule text goes through here. */
import { isIPv4, isIPv6 } from 'node:net';
import { CtnetError, ErrorCode } from '../core/index.js';

export type Family = 4 | 6;

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

function v4ToBig(a: string): bigint {
  return a.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function bigToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
}

function v6ToBig(a: string): bigint {
  let text = a.toLowerCase();
  const v4tail = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4tail?.[1]) {
    const n = v4ToBig(v4tail[1]);
    text = `${text.slice(0, -v4tail[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

function bigToV6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt((7 - i) * 16)) & 0xffffn));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function addressFamily(address: string): Family | undefined {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  return undefined;
}

/** Canonical text of a bare address, or a CtnetError (code 7) naming it. */
export function canonicalAddress(address: string, what = 'address'): { family: Family; address: string } {
  if (isIPv4(address)) return { family: 4, address: bigToV4(v4ToBig(address)) };
  if (isIPv6(address) && !address.includes('%')) return { family: 6, address: bigToV6(v6ToBig(address)) };
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
  const n = family === 4 ? v4ToBig(address) : v6ToBig(address);
  const bits = BigInt(max);
  const mask = ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n);
  const net = n & mask;
  const netText = family === 4 ? bigToV4(net) : bigToV6(net);
  return { family, address, prefix, subnet: `${netText}/${prefix}`, host: `${address}/${max}` };
}
