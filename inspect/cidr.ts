/**
 * The little CIDR arithmetic the network commands need (parse, contains, overlap, nth address),
 * on BigInt so IPv4 and IPv6 share one code path.
 */
import { isIP } from 'node:net';
import { CtnetError, ErrorCode } from '../core/index.js';

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
  const family = isIP(text);
  if (family === 4) {
    return { family, value: text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n) };
  }
  if (family === 6) {
    const [head = '', tail] = text.split('::');
    const groups = (s: string) => (s ? s.split(':') : []);
    const expand = (gs: string[]) =>
      gs.flatMap((g) => {
        if (!g.includes('.')) return [Number.parseInt(g, 16)];
        const v4 = parseIp(g).value;
        return [Number(v4 >> 16n), Number(v4 & 0xffffn)];
      });
    const h = expand(groups(head));
    const t = tail === undefined ? [] : expand(groups(tail));
    const all = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
    return { family, value: all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) };
  }
  throw new CtnetError(ErrorCode.invalidConfig, `invalid IP address ${JSON.stringify(text)}`);
}

export function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups = [...Array(8).keys()].map((i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: compress the longest run (≥ 2) of zero groups.
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len && j - i >= 2) best = { start: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start < 0) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.len).join(':')}`;
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
