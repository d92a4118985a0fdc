/**
 * IP address text ↔ BigInt: parse (strict, as Go's net.ParseIP since 1.17: no leading zeros, no
 * zone) and format (Go's net.IP.String(): dotted quad; RFC 5952 for IPv6). The one codec every
 * module uses, so an address prints the same in lease files, rules, netlink and the CLI.
 *
 * Why not `ip-address` at run time: loading it costs 5–15 ms on this machine kind, paid by every
 * CNI call; what is needed here is small. core/cidr.test.ts checks it against ip-address.
 */

export type Family = 4 | 6;

export interface IpAddr {
  readonly family: Family;
  readonly value: bigint;
}

export function bitsOf(family: Family): number {
  return family === 4 ? 32 : 128;
}

const v4Pattern = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4(text: string): bigint | undefined {
  const m = v4Pattern.exec(text);
  if (!m) return undefined;
  let v = 0n;
  for (let i = 1; i <= 4; i++) {
    const part = m[i] as string;
    // Go rejects leading zeros ("010.0.0.1") since 1.17; so do we, to agree on what is valid.
    if (part.length > 1 && part.startsWith('0')) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseGroups(text: string): number[] | undefined {
  if (text === '') return [];
  const out: number[] = [];
  for (const g of text.split(':')) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    out.push(Number.parseInt(g, 16));
  }
  return out;
}

function parseV6(text: string): bigint | undefined {
  let body = text;
  let tail: number[] = [];
  // An embedded IPv4 suffix (::ffff:10.0.0.1) counts as the last two groups.
  const lastColon = body.lastIndexOf(':');
  if (lastColon >= 0 && body.slice(lastColon + 1).includes('.')) {
    const v4 = parseV4(body.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [Number(v4 >> 16n), Number(v4 & 0xffffn)];
    body = body.slice(0, lastColon + 1);
    if (body.endsWith(':') && !body.endsWith('::')) body = body.slice(0, -1);
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0] as string);
  const rest = halves.length === 2 ? parseGroups(halves[1] as string) : [];
  if (!head || !rest) return undefined;
  const given = head.length + rest.length + tail.length;
  let groups: number[];
  if (halves.length === 2) {
    if (given > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - given).fill(0), ...rest, ...tail];
  } else {
    if (given !== 8) return undefined;
    groups = [...head, ...tail];
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

/** Parses an IPv4 or IPv6 address (no prefix, no zone); undefined when it is not one. */
export function parseIp(text: string): IpAddr | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.includes(':')) {
    const value = parseV6(text);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseV4(text);
  return value === undefined ? undefined : { family: 4, value };
}

const v4Octet = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const v4Strict = new RegExp(`^${v4Octet}(?:\\.${v4Octet}){3}$`);

/**
 * Whether `text` is an IPv4 or IPv6 address, as parseIp decides, without building its value: one regular
 * expression for IPv4 (what a directory of leases holds), where parseIp's BigInt arithmetic costs ~3 µs a name.
 */
export function isIpText(text: string): boolean {
  if (text.includes(':')) return parseV6(text) !== undefined;
  return v4Strict.test(text);
}

/** Canonical text, as Go's net.IP.String() prints it (and so as the reference names lease files). */
export function formatIp(ip: IpAddr): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(Number((ip.value >> s) & 0xffffn));
  // RFC 5952: compress the longest run (first on ties) of at least two zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
