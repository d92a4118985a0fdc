/**
 * The sets and maps that hold each attachment's state in the nftables backend, and their elements in wire form
 * (nft-netlink.ts). Part of the on-host contract (iptables/README.md). Every element carries the attachment's
 * comment, so an element always tells whose it is.
 */
import { type Family, parseIp } from '../core/index.js';
import { attachmentHash } from './attachment.js';
import type { SetElement } from './nft-netlink.js';
import type { AttachmentKey, PortProtocol } from './types.js';

export const nftSets = {
  /** proto . port → container address . port: DNAT of a port published on every host address. */
  fwd: { 4: 'fwd4', 6: 'fwd6' } as Record<Family, string>,
  /** host address . proto . port → container address . port: DNAT of a port published on one host address. */
  fwdAddr: { 4: 'fwd4-addr', 6: 'fwd6-addr' } as Record<Family, string>,
  /**
   * host interface . proto . port: a connection to a published port that arrives from the container's own host
   * interface (the bridge: another container of the network, or the container itself) is marked for masquerade,
   * so the answer comes back through the host (hairpin).
   */
  hairpin: 'hairpin',
  /** host interface . host address . proto . port: the same for a port published on one host address. */
  hairpinAddr: { 4: 'hairpin4-addr', 6: 'hairpin6-addr' } as Record<Family, string>,
  /** container address: masquerade DNATed connections to it from 127.0.0.0/8 (route_localnet). */
  localhost4: 'localhost4',
  /** container address: masquerade every DNATed connection to it (masqAll). */
  masqAll: { 4: 'masqall4', 6: 'masqall6' } as Record<Family, string>,
  /** container address: its traffic is masqueraded (bridge ipMasq) … */
  masqSource: { 4: 'masq-src4', 6: 'masq-src6' } as Record<Family, string>,
  /** container address . host interface: … unless it leaves through its own host interface (its subnet). */
  masqLocal: { 4: 'masq-local4', 6: 'masq-local6' } as Record<Family, string>,
  /**
   * One element per attachment and kind (`d`/`m` + 14 hex digits of the attachment hash, as an interface-name
   * string): created first by every ADD, so a repeated ADD is refused and takes the path that replaces what the
   * earlier one installed.
   */
  attachments: 'attachments',
  /** bridge: forwarded traffic between two bridges of this set is dropped (isolated networks) … */
  isolated: 'isolated',
  /** bridge . bridge: … unless it stays on one bridge. */
  isolatedSelf: 'isolated-self',
} as const;

const addrType: Record<Family, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };

/** `add set`/`add map` lines for every set above (idempotent: an existing set is left as it is). */
export function setDeclarations(T: string): string[] {
  const S = nftSets;
  const lines: string[] = [];
  for (const f of [4, 6] as const) {
    const a = addrType[f];
    lines.push(
      `add map ${T} ${S.fwd[f]} { type inet_proto . inet_service : ${a} . inet_service; }`,
      `add map ${T} ${S.fwdAddr[f]} { type ${a} . inet_proto . inet_service : ${a} . inet_service; }`,
      `add set ${T} ${S.hairpinAddr[f]} { type ifname . ${a} . inet_proto . inet_service; }`,
      `add set ${T} ${S.masqAll[f]} { type ${a}; }`,
      `add set ${T} ${S.masqSource[f]} { type ${a}; }`,
      `add set ${T} ${S.masqLocal[f]} { type ${a} . ifname; }`,
    );
  }
  lines.push(
    `add set ${T} ${S.hairpin} { type ifname . inet_proto . inet_service; }`,
    `add set ${T} ${S.localhost4} { type ipv4_addr; }`,
    `add set ${T} ${S.attachments} { type ifname; }`,
    `add set ${T} ${S.isolated} { type ifname; }`,
    `add set ${T} ${S.isolatedSelf} { type ifname . ifname; }`,
  );
  return lines;
}

/** The sets port forwards use. */
export function forwardSets(): string[] {
  const S = nftSets;
  return [
    ...[4, 6].flatMap((f) => [S.fwd[f as Family], S.fwdAddr[f as Family], S.hairpinAddr[f as Family], S.masqAll[f as Family]]),
    S.hairpin,
    S.localhost4,
    S.attachments,
  ];
}

/** The sets network isolation uses. */
export function isolationSets(): string[] {
  return [nftSets.isolated, nftSets.isolatedSelf];
}

/** The elements that isolate `bridge`, keyed by it. */
export function isolationElements(bridge: string, comment: string): SetElement[] {
  const b = ifnameBytes(bridge);
  return [
    { set: nftSets.isolated, key: b, comment },
    { set: nftSets.isolatedSelf, key: Buffer.concat([b, b]), comment },
  ];
}

/** The sets the bridge's masquerade uses. */
export function masqueradeSets(): string[] {
  const S = nftSets;
  return [S.masqSource[4], S.masqSource[6], S.masqLocal[4], S.masqLocal[6], S.attachments];
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

/** An interface name as the kernel compares it: IFNAMSIZ bytes, NUL-padded. */
function ifnameBytes(name: string): Buffer {
  const b = Buffer.alloc(16);
  if (Buffer.byteLength(name) > 15 || /[/:\s\0]/.test(name) || !name) throw new Error(`not an interface name: ${name}`);
  b.write(name, 'utf8');
  return b;
}

/** Hairpin: connections to the published port that arrive from `hostInterface` are masqueraded. */
export function hairpinElement(
  hostInterface: string,
  host: { family: Family; address: string } | undefined,
  protocol: PortProtocol,
  port: number,
  comment: string,
): SetElement {
  const tail = Buffer.concat([protoBytes(protocol), portBytes(port)]);
  if (!host) return { set: nftSets.hairpin, key: Buffer.concat([ifnameBytes(hostInterface), tail]), comment };
  return {
    set: nftSets.hairpinAddr[host.family],
    key: Buffer.concat([ifnameBytes(hostInterface), addrBytes(host.address), tail]),
    comment,
  };
}

export function localhostElement(address: string, comment: string): SetElement {
  return { set: nftSets.localhost4, key: addrBytes(address), comment };
}

export function masqAllElement(family: Family, address: string, comment: string): SetElement {
  return { set: nftSets.masqAll[family], key: addrBytes(address), comment };
}

/** The bridge's masquerade of `a`: everything it sends, except through `hostInterface` (its own subnet). */
export function masqueradeElements(a: { family: Family; address: string }, hostInterface: string, comment: string) {
  return [
    { set: nftSets.masqSource[a.family], key: addrBytes(a.address), comment },
    { set: nftSets.masqLocal[a.family], key: Buffer.concat([addrBytes(a.address), ifnameBytes(hostInterface)]), comment },
  ];
}

/** Whether two elements are the same element of the same set (key and mapped value). */
export function sameElement(a: SetElement, b: SetElement): boolean {
  const eq = (x?: Buffer, y?: Buffer) => (x === undefined ? y === undefined : y !== undefined && x.equals(y));
  return a.set === b.set && a.key.equals(b.key) && eq(a.data, b.data);
}

/** Readable form of an element for logs and errors. */
export function describeElement(e: SetElement): string {
  const hex = (b?: Buffer) => b?.toString('hex');
  return `${e.set} { ${hex(e.key)}${e.data ? ` : ${hex(e.data)}` : ''} }`;
}
