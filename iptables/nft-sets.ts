/**
 * The sets and maps that hold each attachment's state in the nftables backend, and their elements in wire form
 * (nft-netlink.ts). Part of the on-host contract (iptables/README.md). Every element carries the attachment's
 * comment, so an element always tells whose it is.
 */
import { type Family, parseIp } from '../core/index.js';
import { attachmentHash } from './attachment.js';
import type { ParsedCidr } from './cidr.js';
import type { SetElement } from './nft-netlink.js';
import type { AttachmentKey, PortProtocol } from './types.js';

export const nftSets = {
  /** proto . port → container address . port: DNAT of a port published on every host address. */
  fwd: { 4: 'fwd4', 6: 'fwd6' } as Record<Family, string>,
  /** host address . proto . port → container address . port: DNAT of a port published on one host address. */
  fwdAddr: { 4: 'fwd4-addr', 6: 'fwd6-addr' } as Record<Family, string>,
  /** container address . source range: masquerade DNATed connections to the container from that range (hairpin). */
  hairpin: { 4: 'hairpin4', 6: 'hairpin6' } as Record<Family, string>,
  /** container address: masquerade DNATed connections to it from 127.0.0.0/8 (route_localnet). */
  localhost4: 'localhost4',
  /** container address . destination range: masquerade the container's traffic to that range (bridge ipMasq). */
  outbound: { 4: 'outbound4', 6: 'outbound6' } as Record<Family, string>,
  /**
   * One element per attachment and kind (`d`/`m` + 14 hex digits of the attachment hash, as an interface-name
   * string): created first by every ADD, so a repeated ADD is refused and takes the path that replaces what the
   * earlier one installed.
   */
  attachments: 'attachments',
} as const;

const addrType: Record<Family, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };

/** `add set`/`add map` lines for every set above (idempotent: an existing set is left as it is). */
export function setDeclarations(T: string): string[] {
  const lines: string[] = [];
  for (const f of [4, 6] as const) {
    const a = addrType[f];
    lines.push(
      `add map ${T} ${nftSets.fwd[f]} { type inet_proto . inet_service : ${a} . inet_service; }`,
      `add map ${T} ${nftSets.fwdAddr[f]} { type ${a} . inet_proto . inet_service : ${a} . inet_service; }`,
      `add set ${T} ${nftSets.hairpin[f]} { type ${a} . ${a}; flags interval; }`,
      `add set ${T} ${nftSets.outbound[f]} { type ${a} . ${a}; flags interval; }`,
    );
  }
  lines.push(`add set ${T} ${nftSets.localhost4} { type ipv4_addr; }`, `add set ${T} ${nftSets.attachments} { type ifname; }`);
  return lines;
}

/** Every set above, for listing and GC. */
export function allSets(): string[] {
  return [4, 6]
    .flatMap((f) => [
      nftSets.fwd[f as Family],
      nftSets.fwdAddr[f as Family],
      nftSets.hairpin[f as Family],
      nftSets.outbound[f as Family],
    ])
    .concat(nftSets.localhost4, nftSets.attachments);
}

const protocolNumber: Record<PortProtocol, number> = { tcp: 6, udp: 17, sctp: 132 };

function addrBytes(address: string): Buffer {
  const ip = parseIp(address);
  if (!ip) throw new Error(`not an address: ${address}`);
  return valueBytes(ip.family, ip.value);
}

function valueBytes(family: Family, value: bigint): Buffer {
  const hex = value.toString(16).padStart(family === 4 ? 8 : 32, '0');
  return Buffer.from(hex, 'hex');
}

/** A field of inet_proto or inet_service: its bytes padded to a 4-byte register. */
const protoBytes = (p: PortProtocol) => Buffer.from([protocolNumber[p], 0, 0, 0]);
function portBytes(port: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(port, 0);
  return b;
}

export interface ForwardElement {
  family: Family;
  /** Canonical host address, or undefined for every address. */
  hostIP: string | undefined;
  protocol: PortProtocol;
  hostPort: number;
  /** Canonical container address. */
  target: string;
  containerPort: number;
}

export function forwardElement(f: ForwardElement, comment: string): SetElement {
  const tail = Buffer.concat([protoBytes(f.protocol), portBytes(f.hostPort)]);
  return {
    set: f.hostIP ? nftSets.fwdAddr[f.family] : nftSets.fwd[f.family],
    key: f.hostIP ? Buffer.concat([addrBytes(f.hostIP), tail]) : tail,
    data: Buffer.concat([addrBytes(f.target), portBytes(f.containerPort)]),
    comment,
  };
}

export function markerElement(kind: 'dnat' | 'masq', key: AttachmentKey, comment: string): SetElement {
  const name = Buffer.alloc(16);
  name.write(`${kind[0]}${attachmentHash(key).slice(0, 14)}`, 'latin1');
  return { set: nftSets.attachments, key: name, comment };
}

/** Inclusive bounds of a CIDR block. */
function bounds(family: Family, subnet: string): [bigint, bigint] {
  const [net, len] = subnet.split('/');
  const bits = family === 4 ? 32n : 128n;
  const base = (parseIp(net ?? '') as { value: bigint }).value;
  const size = 1n << (bits - BigInt(len ?? bits));
  return [base, base + size - 1n];
}

/** An element `address . [lo, hi]` of a concatenated interval set. */
function rangeElement(set: string, a: { family: Family; address: string }, lo: bigint, hi: bigint, comment: string) {
  const key = addrBytes(a.address);
  return {
    set,
    key: Buffer.concat([key, valueBytes(a.family, lo)]),
    keyEnd: Buffer.concat([key, valueBytes(a.family, hi)]),
    comment,
  };
}

/** Hairpin masquerade for DNATed connections to `a` from `source` (its subnet, or 0.0.0.0/0 with masqAll). */
export function hairpinElement(a: ParsedCidr, source: string, comment: string): SetElement {
  const [lo, hi] = bounds(a.family, source);
  return rangeElement(nftSets.hairpin[a.family], a, lo, hi, comment);
}

export function localhostElement(address: string, comment: string): SetElement {
  return { set: nftSets.localhost4, key: addrBytes(address), comment };
}

/** Masquerade of `a`'s traffic to everything outside its subnet: one element per range left (none for /0). */
export function outboundElements(a: ParsedCidr, comment: string): SetElement[] {
  const [lo, hi] = bounds(a.family, a.subnet);
  const max = a.family === 4 ? (1n << 32n) - 1n : (1n << 128n) - 1n;
  const out: SetElement[] = [];
  if (lo > 0n) out.push(rangeElement(nftSets.outbound[a.family], a, 0n, lo - 1n, comment));
  if (hi < max) out.push(rangeElement(nftSets.outbound[a.family], a, hi + 1n, max, comment));
  return out;
}

/** Whether two elements are the same element of the same set (key, range end and mapped value). */
export function sameElement(a: SetElement, b: SetElement): boolean {
  const eq = (x?: Buffer, y?: Buffer) => (x === undefined ? y === undefined : y !== undefined && x.equals(y));
  return a.set === b.set && a.key.equals(b.key) && eq(a.keyEnd, b.keyEnd) && eq(a.data, b.data);
}

/** Readable form of an element for logs and errors. */
export function describeElement(e: SetElement): string {
  const hex = (b?: Buffer) => b?.toString('hex');
  return `${e.set} { ${hex(e.key)}${e.keyEnd ? `-${hex(e.keyEnd)}` : ''}${e.data ? ` : ${hex(e.data)}` : ''} }`;
}
