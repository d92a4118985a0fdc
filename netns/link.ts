/**
 * Links over rtnetlink: lookups, bridges, veth pairs, changes to an existing link, deletes, counters; and how a
 * link is named in requests (by name, or by index when the caller knows it).
 */
import { closeSync } from 'node:fs';
import {
  AttrWriter,
  attrString,
  attrU8,
  attrU32,
  CtnetError,
  ErrorCode,
  hasErrno,
  parseAttrs,
  wrapError,
} from '../core/index.js';
import { formatMac, macOrThrow } from './address-attr.js';
import type { Netlink } from './netlink.js';
import * as c from './rtnl-codec.js';

import { openNetns } from './switch.js';

export interface LinkInfo {
  index: number;
  name: string;
  mac?: string;
  mtu: number;
  /** IFF_UP: administratively up. */
  up: boolean;
  /** RFC 2863 operational state: 'up', 'down', 'lowerlayerdown', 'unknown', … */
  operState?: string;
  /** Index of the master device (the bridge this link is a port of). */
  master?: number;
  /** Link type from IFLA_INFO_KIND: 'veth', 'bridge', … (undefined for plain devices such as lo). */
  kind?: string;
  /** IFLA_LINK: for a veth, the peer's index (in the namespace linkNetnsId names, if set). */
  peerIndex?: number;
  /** The peer's namespace as an id local to this namespace, when the peer lives elsewhere. */
  linkNetnsId?: number;
  /** Promiscuous mode as set by a user (IFF_PROMISC), not the count bridges add internally. */
  promisc: boolean;
  /** For a bridge: whether VLAN filtering is on. */
  vlanFiltering?: boolean;
  /** For a bridge port: its port flags. */
  bridgePort?: { hairpin: boolean; isolated: boolean };
}

/** A link by name, or by index when the caller already knows it (which spares a lookup request). */
export type LinkRef = string | number;

/**
 * Changes to an existing link, sent as one request. The kernel applies them in this order: bridge port flags,
 * MAC, MTU, up/down, then ipv4Conf and ipv6AddrGenMode; a setting that must be in place before the link goes
 * up (arp_notify, for the announcement sent at up) needs a call of its own first.
 */
export interface LinkChange {
  up?: boolean;
  /** Promiscuous mode (IFF_PROMISC), as `ip link set … promisc on|off`. */
  promisc?: boolean;
  mac?: string;
  mtu?: number;
  /** Bridge port flags; the link must already be a port. */
  bridgePort?: { hairpin?: boolean; isolated?: boolean };
  /** IPv4 settings of the link, as net.ipv4.conf.<link>.<name> holds them (only those netlink sets exactly so). */
  ipv4Conf?: Partial<Record<keyof typeof c.IPV4_DEVCONF, number>>;
  /** How the kernel makes the link's IPv6 link-local address: 'none' gives it none (`ip link set … addrgenmode none`). */
  ipv6AddrGenMode?: 'eui64' | 'none';
}

export interface LinkStats {
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  rxErrors: bigint;
  txErrors: bigint;
  rxDropped: bigint;
  txDropped: bigint;
}

export interface VethOptions {
  mtu?: number;
  /** The MAC of `name`. */
  mac?: string;
  peerMac?: string;
  /** Make the peer directly in this namespace. */
  peerNetnsPath?: string;
  /** The bridge `name` becomes a port of, in the same request. */
  master?: LinkRef;
}

const operStates = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];
const maxIfnameBytes = 15;

/** Whether `name` can be a link's name at all (1..15 bytes): lookups of other names find nothing. */
export function isLinkName(name: string): boolean {
  const bytes = Buffer.byteLength(name);
  return bytes >= 1 && bytes <= maxIfnameBytes;
}

export function linkText(link: LinkRef): string {
  return typeof link === 'number' ? `link #${link}` : link;
}

function checkName(name: string, what: string): void {
  if (!isLinkName(name) || /[/\s:]/.test(name)) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `failed to ${what}: "${name}" is not a valid interface name (1-15 bytes, no '/', ':' or spaces)`,
    );
  }
}

export function noSuchLink(nl: Netlink, link: LinkRef, what: string, cause?: unknown): CtnetError {
  const which = typeof link === 'number' ? `with index ${link}` : `named "${link}"`;
  return new CtnetError(ErrorCode.internal, `failed to ${what}: no link ${which}${nl.where}`, cause ? { cause } : {});
}

/** The index of a link given by name (one lookup) or by index (none: the request that uses it finds out). */
export async function indexOf(nl: Netlink, link: LinkRef, what: string): Promise<number> {
  return typeof link === 'number' ? link : (await requireLink(nl, link, what)).index;
}

/** The index of a link, or undefined when there is no link of that name (an index is taken as given). */
export async function indexOrUndefined(nl: Netlink, link: LinkRef): Promise<number | undefined> {
  return typeof link === 'number' ? link : (await getLink(nl, link))?.index;
}

/** A link that must exist, or a CtnetError naming it. */
export async function requireLink(nl: Netlink, link: LinkRef, what: string): Promise<LinkInfo> {
  const found = await getLink(nl, link);
  if (!found) throw noSuchLink(nl, link, what);
  return found;
}

/** A link by name or index, or undefined when there is none. */
export async function getLink(nl: Netlink, link: LinkRef): Promise<LinkInfo | undefined> {
  const found = await getLinkMessage(nl, link);
  return found?.link;
}

/**
 * A link as the kernel answers for it: the message (for the details of its kind: vxlan.ts) and the link it
 * describes. An answer about another link is refused, never taken for it.
 */
export async function getLinkMessage(nl: Netlink, link: LinkRef): Promise<{ msg: Buffer; link: LinkInfo } | undefined> {
  const body = new AttrWriter();
  if (typeof link === 'number') {
    body.raw(c.ifinfomsg({ index: link })).u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS);
  } else {
    if (!isLinkName(link)) return undefined;
    body.raw(c.ifinfomsg()).u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS).string(c.IFLA_IFNAME, link);
  }
  const what = `get ${typeof link === 'number' ? linkText(link) : `link ${link}`}${nl.where}`;
  let msgs: Buffer[];
  try {
    msgs = await nl.request(c.RTM_GETLINK, 0, body.toBuffer());
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) return undefined;
    throw wrapError(what, err);
  }
  const links = msgs.map(parseLink);
  const [found] = links;
  const asked = (l: LinkInfo) => (typeof link === 'number' ? l.index === link : l.name === link);
  if (links.length > 1 || (found && !asked(found))) {
    const got = links.map((l) => `${l.name} (#${l.index})`).join(', ');
    throw new CtnetError(ErrorCode.internal, `failed to ${what}: the kernel's answer is about another link: ${got}`);
  }
  return found ? { msg: msgs[0] as Buffer, link: found } : undefined;
}

export async function listLinks(nl: Netlink): Promise<LinkInfo[]> {
  const body = new AttrWriter().raw(c.ifinfomsg()).u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS).toBuffer();
  try {
    return (await nl.dump(c.RTM_GETLINK, body)).map(parseLink);
  } catch (err) {
    throw wrapError(`list links${nl.where}`, err);
  }
}

/** Returns the bridge `name`, creating it if needed. Concurrent callers all get the one bridge. */
export async function ensureBridge(
  nl: Netlink,
  name: string,
  opts: { mtu?: number; vlanFiltering?: boolean } = {},
): Promise<LinkInfo> {
  const what = `ensure bridge ${name}${nl.where}`;
  checkName(name, what);
  let link = await getLink(nl, name);
  if (!link) {
    const body = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, name);
    if (opts.mtu) body.u32(c.IFLA_MTU, opts.mtu);
    body.nest(c.IFLA_LINKINFO, (li) => {
      li.kind(c.IFLA_INFO_KIND, 'bridge');
      if (opts.vlanFiltering) li.nest(c.IFLA_INFO_DATA, (d) => d.u8(c.IFLA_BR_VLAN_FILTERING, 1));
    });
    try {
      await nl.request(c.RTM_NEWLINK, c.NLM_F_CREATE | c.NLM_F_EXCL, body.toBuffer());
    } catch (err) {
      // EEXIST: another ADD created it between our lookup and our create; use theirs.
      if (!hasErrno(err, 'EEXIST')) throw opts.vlanFiltering ? vlanError(what, err) : wrapError(what, err);
    }
    link = await getLink(nl, name);
    if (!link) throw new CtnetError(ErrorCode.internal, `failed to ${what}: it vanished right after creation`);
  }
  if (link.kind !== 'bridge') {
    throw new CtnetError(
      ErrorCode.exists,
      `failed to ${what}: a link named "${name}" already exists and is ${link.kind ? `a ${link.kind}` : 'not a bridge'}`,
    );
  }
  if (opts.vlanFiltering && !link.vlanFiltering) {
    const body = new AttrWriter()
      .raw(c.ifinfomsg({ index: link.index }))
      .nest(c.IFLA_LINKINFO, (li) => {
        li.kind(c.IFLA_INFO_KIND, 'bridge');
        li.nest(c.IFLA_INFO_DATA, (d) => d.u8(c.IFLA_BR_VLAN_FILTERING, 1));
      })
      .toBuffer();
    const enabling = `enable VLAN filtering on bridge ${name}${nl.where}`;
    try {
      await nl.request(c.RTM_NEWLINK, 0, body);
    } catch (err) {
      throw vlanError(enabling, err);
    }
    link = { ...link, vlanFiltering: true };
  }
  return link;
}

/** Bridge VLAN calls fail with EOPNOTSUPP on kernels built without CONFIG_BRIDGE_VLAN_FILTERING. */
export function vlanError(what: string, err: unknown): CtnetError {
  if (!hasErrno(err, 'EOPNOTSUPP', 'ENOTSUP')) return wrapError(what, err);
  return new CtnetError(ErrorCode.internal, `failed to ${what}: this kernel's bridge has no VLAN support`, {
    cause: err,
    hint: 'the kernel needs CONFIG_BRIDGE_VLAN_FILTERING; use a network without "vlan" here',
  });
}

/**
 * Creates a veth pair: `name` here, `peerName` here or, with peerNetnsPath, directly in that
 * namespace (so the peer never appears here and cannot clash with names here). `mac` is for
 * `name`, `peerMac` for the peer; `mtu` for both ends; `master` makes `name` a port of that bridge
 * in the same request. Returns `name` as the kernel echoes it when created (index, MAC, and as
 * peerIndex the peer's index in its namespace; without master or up state, which come after the
 * echo), or undefined from kernels that do not echo (before 6.3).
 */
export async function createVeth(
  nl: Netlink,
  name: string,
  peerName: string,
  opts: VethOptions = {},
): Promise<LinkInfo | undefined> {
  const what = `create veth pair ${name}/${peerName}${nl.where}`;
  checkName(name, what);
  checkName(peerName, what);
  const mac = opts.mac === undefined ? undefined : macOrThrow(opts.mac, what);
  const peerMac = opts.peerMac === undefined ? undefined : macOrThrow(opts.peerMac, what);
  const peerFd = opts.peerNetnsPath === undefined ? undefined : openNetns(opts.peerNetnsPath);
  try {
    const peer = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, peerName);
    if (opts.mtu) peer.u32(c.IFLA_MTU, opts.mtu);
    if (peerMac) peer.bytes(c.IFLA_ADDRESS, peerMac);
    if (peerFd !== undefined) peer.u32(c.IFLA_NET_NS_FD, peerFd);
    const body = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, name);
    if (opts.mtu) body.u32(c.IFLA_MTU, opts.mtu);
    if (mac) body.bytes(c.IFLA_ADDRESS, mac);
    if (opts.master !== undefined) body.u32(c.IFLA_MASTER, await indexOf(nl, opts.master, what));
    body.nest(c.IFLA_LINKINFO, (li) => {
      li.kind(c.IFLA_INFO_KIND, 'veth');
      li.nest(c.IFLA_INFO_DATA, (d) => d.bytes(c.VETH_INFO_PEER, peer.toBuffer()));
    });
    const replies = await nl.request(c.RTM_NEWLINK, c.NLM_F_CREATE | c.NLM_F_EXCL | c.NLM_F_ECHO, body.toBuffer());
    return replies.map(parseLink).find((l) => l.name === name);
  } catch (err) {
    if (hasErrno(err, 'EEXIST')) {
      const here = await getLink(nl, name).catch(() => undefined);
      const taken = here ? `"${name}"${nl.where}` : `"${peerName}" in ${opts.peerNetnsPath ?? 'this namespace'}`;
      throw new CtnetError(ErrorCode.exists, `failed to ${what}: a link named ${taken} already exists`, { cause: err });
    }
    throw err instanceof CtnetError ? err : wrapError(what, err);
  } finally {
    if (peerFd !== undefined) closeSync(peerFd);
  }
}

/** The request that deletes link `name` (for a veth, both ends): also sent off the main thread (link-delete.ts). */
export function deleteLinkBody(name: string): Buffer {
  return new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, name).toBuffer();
}

/** Deletes a link (for a veth, both ends). False if there was no such link. */
export async function deleteLink(nl: Netlink, name: string): Promise<boolean> {
  if (!isLinkName(name)) return false;
  try {
    await nl.request(c.RTM_DELLINK, 0, deleteLinkBody(name));
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) return false;
    throw wrapError(`delete link ${name}${nl.where}`, err);
  }
}

/** Applies `change` to an existing link in one request (see LinkChange for the order the kernel follows). */
export async function updateLink(nl: Netlink, link: LinkRef, change: LinkChange): Promise<void> {
  const what = `change link ${linkText(link)}${nl.where}`;
  const msg: c.IfInfoMsg = typeof link === 'number' ? { index: link } : {};
  let flags = 0;
  let mask = 0;
  if (change.up !== undefined) {
    flags |= change.up ? c.IFF_UP : 0;
    mask |= c.IFF_UP;
  }
  if (change.promisc !== undefined) {
    flags |= change.promisc ? c.IFF_PROMISC : 0;
    mask |= c.IFF_PROMISC;
  }
  if (mask) Object.assign(msg, { flags, change: mask });
  const body = new AttrWriter().raw(c.ifinfomsg(msg));
  // With index 0 the kernel finds the link by IFLA_IFNAME.
  if (typeof link === 'string') {
    checkName(link, what);
    body.string(c.IFLA_IFNAME, link);
  }
  if (change.mac !== undefined) body.bytes(c.IFLA_ADDRESS, macOrThrow(change.mac, what));
  if (change.mtu !== undefined) body.u32(c.IFLA_MTU, change.mtu);
  const port = change.bridgePort;
  if (port && (port.hairpin !== undefined || port.isolated !== undefined)) {
    body.nest(c.IFLA_LINKINFO, (li) => {
      li.kind(c.IFLA_INFO_SLAVE_KIND, 'bridge');
      li.nest(c.IFLA_INFO_SLAVE_DATA, (d) => {
        if (port.hairpin !== undefined) d.u8(c.IFLA_BRPORT_MODE, port.hairpin ? 1 : 0);
        if (port.isolated !== undefined) d.u8(c.IFLA_BRPORT_ISOLATED, port.isolated ? 1 : 0);
      });
    });
  }
  const ipv4 = Object.entries(change.ipv4Conf ?? {}) as [keyof typeof c.IPV4_DEVCONF, number][];
  const genMode = change.ipv6AddrGenMode;
  if (ipv4.length || genMode) {
    body.nest(c.IFLA_AF_SPEC, (spec) => {
      if (ipv4.length) {
        spec.nest(c.AF_INET, (inet) =>
          inet.nest(c.IFLA_INET_CONF, (conf) => {
            for (const [name, value] of ipv4) conf.u32(c.IPV4_DEVCONF[name], value);
          }),
        );
      }
      if (genMode) {
        const mode = genMode === 'none' ? c.IN6_ADDR_GEN_MODE_NONE : 0;
        spec.nest(c.AF_INET6, (inet6) => inet6.u8(c.IFLA_INET6_ADDR_GEN_MODE, mode));
      }
    });
  }
  try {
    await nl.request(c.RTM_NEWLINK, 0, body.toBuffer());
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) throw noSuchLink(nl, link, what, err);
    throw wrapError(what, err);
  }
}

/** Packet and byte counters of a link (IFLA_STATS64), or undefined if there is no such link. */
export async function linkStats(nl: Netlink, name: string): Promise<LinkStats | undefined> {
  if (!isLinkName(name)) return undefined;
  const body = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, name).toBuffer();
  try {
    const [msg] = await nl.request(c.RTM_GETLINK, 0, body);
    const raw = msg ? parseAttrs(msg, 16).get(c.IFLA_STATS64) : undefined;
    if (!raw || raw.length < 64) return undefined;
    const u64 = (i: number) => raw.readBigUInt64LE(i * 8);
    return {
      rxPackets: u64(0),
      txPackets: u64(1),
      rxBytes: u64(2),
      txBytes: u64(3),
      rxErrors: u64(4),
      txErrors: u64(5),
      rxDropped: u64(6),
      txDropped: u64(7),
    };
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) return undefined;
    throw wrapError(`get statistics of link ${name}${nl.where}`, err);
  }
}

/** A link message (ifinfomsg and attributes, as RTM_NEWLINK / RTM_DELLINK carry it). */
export function parseLink(m: Buffer): LinkInfo {
  const flags = m.readUInt32LE(8);
  const index = m.readInt32LE(4);
  const a = parseAttrs(m, 16);
  const link: LinkInfo = {
    index,
    name: attrString(a, c.IFLA_IFNAME) ?? '',
    mtu: attrU32(a, c.IFLA_MTU) ?? 0,
    up: (flags & c.IFF_UP) !== 0,
    promisc: (flags & c.IFF_PROMISC) !== 0,
  };
  const mac = a.get(c.IFLA_ADDRESS);
  if (mac) link.mac = formatMac(mac);
  const oper = attrU8(a, c.IFLA_OPERSTATE);
  if (oper !== undefined) link.operState = operStates[oper] ?? String(oper);
  const master = attrU32(a, c.IFLA_MASTER);
  if (master) link.master = master;
  const peer = attrU32(a, c.IFLA_LINK);
  if (peer !== undefined) link.peerIndex = peer; // the kernel omits IFLA_LINK for devices without one
  const nsid = a.get(c.IFLA_LINK_NETNSID);
  if (nsid && nsid.length >= 4) link.linkNetnsId = nsid.readInt32LE(0);
  const info = a.get(c.IFLA_LINKINFO);
  if (info) {
    const li = parseAttrs(info);
    const kind = attrString(li, c.IFLA_INFO_KIND);
    if (kind) link.kind = kind;
    const data = li.get(c.IFLA_INFO_DATA);
    if (kind === 'bridge' && data) link.vlanFiltering = attrU8(parseAttrs(data), c.IFLA_BR_VLAN_FILTERING) === 1;
    const slaveData = li.get(c.IFLA_INFO_SLAVE_DATA);
    if (attrString(li, c.IFLA_INFO_SLAVE_KIND) === 'bridge' && slaveData) {
      const port = parseAttrs(slaveData);
      link.bridgePort = {
        hairpin: attrU8(port, c.IFLA_BRPORT_MODE) === 1,
        isolated: attrU8(port, c.IFLA_BRPORT_ISOLATED) === 1,
      };
    }
  }
  return link;
}
