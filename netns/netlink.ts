/**
 * Typed rtnetlink operations on one network namespace: links (veth, bridge, ports), addresses,
 * routes, neighbours, bridge VLANs. Every method is one request to the kernel (plus a name → index
 * lookup where the kernel wants an index); requests on one socket are serialized, because a
 * reply interleaved with a multipart dump would break the dump.
 */

import { closeSync } from 'node:fs';
import {
  bitsOf,
  type Cidr,
  CtnetError,
  ErrorCode,
  encodeNetlinkMessage,
  ipBytes,
  lastOf,
  networkOf,
  nextNetlinkSeq,
  threadNetnsKey,
  wrapError,
} from '../core/index.js';
import { cidrOrThrow, ipOrThrow, ipText } from './address-attr.js';
import { createNetlinkSocket, recvNow, sendOnWorker, socketNetnsIdentity } from './libc.js';
import { NetlinkError, type RequestSocket, RtnlSocket } from './nl-socket.js';
import * as c from './rtnl-codec.js';
import { AttrWriter, attrString, attrU8, attrU32, formatMac, parseAttrList, parseAttrs, parseMac } from './rtnl-codec.js';
import { inNetns, openNetns } from './switch.js';

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

export interface AddressInfo {
  ifindex: number;
  family: 4 | 6;
  address: string;
  prefixLen: number;
  cidr: string;
  tentative: boolean;
  dadFailed: boolean;
  scope: number;
}

export interface RouteInfo {
  family: 4 | 6;
  /** CIDR; '0.0.0.0/0' or '::/0' for a default route. */
  dst: string;
  gw?: string;
  oif?: number;
  table: number;
  scope: number;
  priority?: number;
  mtu?: number;
  advmss?: number;
  protocol: number;
  /** Preferred source address (RTA_PREFSRC), as `ip route` shows "src". */
  prefsrc?: string;
  /** RTN_* route type: 1 unicast, 2 local, 6 blackhole, 7 unreachable, … */
  type: number;
}

export interface RouteSpec {
  dst: string;
  gw?: string;
  /** The outgoing link, by name or by index. */
  dev?: LinkRef;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface NeighborInfo {
  ifindex: number;
  address: string;
  mac?: string;
  /** NUD_* state bits: 0x02 reachable, 0x04 stale, 0x20 failed, 0x80 permanent, … */
  state: number;
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

export interface BridgeVlanInfo {
  vid: number;
  pvid: boolean;
  untagged: boolean;
}

const operStates = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];
const maxIfnameBytes = 15;

function isName(name: string): boolean {
  const bytes = Buffer.byteLength(name);
  return bytes >= 1 && bytes <= maxIfnameBytes;
}

function hasCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof NetlinkError && codes.includes(err.code);
}

export class Netlink {
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly socket: RequestSocket,
    /** The namespace this socket is bound to (undefined: the process's own). */
    readonly nsPath: string | undefined,
    /** That namespace's identity (core threadNetnsKey, taken while switched into it): checked against the socket's. */
    netns?: string,
  ) {
    if (netns !== undefined && socket.netns !== netns) {
      throw new CtnetError(
        ErrorCode.internal,
        `netlink socket for ${nsPath ?? 'our own namespace'} was made in another namespace (${socket.netns ?? 'unknown'}, not ${netns})`,
      );
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }

  private get where(): string {
    return this.nsPath === undefined ? '' : ` in ${this.nsPath}`;
  }

  /**
   * One request; resolves with the payloads of the reply messages (none for a plain ACK). Public for the modules
   * of netns/ that speak for other kernel objects (vxlan.ts, neighbour.ts, owned-route.ts) over this socket.
   */
  request(type: number, flags: number, body: Buffer): Promise<Buffer[]> {
    const send = (): Promise<Buffer[]> => {
      if (this.closed) throw new CtnetError(ErrorCode.internal, 'netlink socket used after withNetlink() returned');
      return this.socket.request(type, flags, body);
    };
    const result = this.tail.then(send, send);
    this.tail = result.catch(() => undefined);
    return result;
  }

  private dump(type: number, body: Buffer): Promise<Buffer[]> {
    return this.request(type, c.NLM_F_DUMP, body);
  }

  // ---- links ----

  async getLink(name: string): Promise<LinkInfo | undefined> {
    if (!isName(name)) return undefined;
    const body = new AttrWriter()
      .raw(c.ifinfomsg())
      .u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS)
      .string(c.IFLA_IFNAME, name)
      .toBuffer();
    return this.getOneLink(body, `get link ${name}${this.where}`, (l) => l.name === name);
  }

  async getLinkByIndex(index: number): Promise<LinkInfo | undefined> {
    const body = new AttrWriter().raw(c.ifinfomsg({ index })).u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS).toBuffer();
    return this.getOneLink(body, `get link #${index}${this.where}`, (l) => l.index === index);
  }

  /** The one link the kernel answers with; an answer about another link is refused, never taken for it. */
  private async getOneLink(body: Buffer, what: string, asked: (l: LinkInfo) => boolean): Promise<LinkInfo | undefined> {
    let links: LinkInfo[];
    try {
      links = (await this.request(c.RTM_GETLINK, 0, body)).map(parseLink);
    } catch (err) {
      if (hasCode(err, 'ENODEV')) return undefined;
      throw wrapError(what, err);
    }
    const [link] = links;
    if (links.length > 1 || (link && !asked(link))) {
      const got = links.map((l) => `${l.name} (#${l.index})`).join(', ');
      throw new CtnetError(ErrorCode.internal, `failed to ${what}: the kernel's answer is about another link: ${got}`);
    }
    return link;
  }

  async listLinks(): Promise<LinkInfo[]> {
    const body = new AttrWriter().raw(c.ifinfomsg()).u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS).toBuffer();
    try {
      return (await this.dump(c.RTM_GETLINK, body)).map(parseLink);
    } catch (err) {
      throw wrapError(`list links${this.where}`, err);
    }
  }

  /** A link that must exist: its index, or a CtnetError naming it. */
  private async requireLink(name: string, what: string): Promise<LinkInfo> {
    const link = await this.getLink(name);
    if (!link) throw this.noSuchLink(name, what);
    return link;
  }

  /** The index of a link given by name (one lookup) or by index (none: the request that uses it finds out). */
  private async indexOf(link: LinkRef, what: string): Promise<number> {
    return typeof link === 'number' ? link : (await this.requireLink(link, what)).index;
  }

  private noSuchLink(link: LinkRef, what: string, cause?: unknown): CtnetError {
    const which = typeof link === 'number' ? `with index ${link}` : `named "${link}"`;
    return new CtnetError(ErrorCode.internal, `failed to ${what}: no link ${which}${this.where}`, cause ? { cause } : {});
  }

  /** Returns the bridge `name`, creating it if needed. Concurrent callers all get the one bridge. */
  async ensureBridge(name: string, opts: { mtu?: number; vlanFiltering?: boolean } = {}): Promise<LinkInfo> {
    const what = `ensure bridge ${name}${this.where}`;
    checkName(name, what);
    let link = await this.getLink(name);
    if (!link) {
      const body = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, name);
      if (opts.mtu) body.u32(c.IFLA_MTU, opts.mtu);
      body.nest(c.IFLA_LINKINFO, (li) => {
        li.kind(c.IFLA_INFO_KIND, 'bridge');
        if (opts.vlanFiltering) li.nest(c.IFLA_INFO_DATA, (d) => d.u8(c.IFLA_BR_VLAN_FILTERING, 1));
      });
      try {
        await this.request(c.RTM_NEWLINK, c.NLM_F_CREATE | c.NLM_F_EXCL, body.toBuffer());
      } catch (err) {
        // EEXIST: another ADD created it between our lookup and our create; use theirs.
        if (!hasCode(err, 'EEXIST')) throw opts.vlanFiltering ? vlanError(what, err) : wrapError(what, err);
      }
      link = await this.getLink(name);
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
      await this.change(body, `enable VLAN filtering on bridge ${name}${this.where}`, vlanError);
      link = { ...link, vlanFiltering: true };
    }
    return link;
  }

  /**
   * Creates a veth pair: `name` here, `peerName` here or, with peerNetnsPath, directly in that
   * namespace (so the peer never appears here and cannot clash with names here). `mac` is for
   * `name`, `peerMac` for the peer; `mtu` for both ends; `master` makes `name` a port of that bridge
   * in the same request. Returns `name` as the kernel echoes it when created (index, MAC, and as
   * peerIndex the peer's index in its namespace; without master or up state, which come after the
   * echo), or undefined from kernels that do not echo (before 6.3).
   */
  async createVeth(
    name: string,
    peerName: string,
    opts: { mtu?: number; mac?: string; peerMac?: string; peerNetnsPath?: string; master?: LinkRef } = {},
  ): Promise<LinkInfo | undefined> {
    const what = `create veth pair ${name}/${peerName}${this.where}`;
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
      if (opts.master !== undefined) body.u32(c.IFLA_MASTER, await this.indexOf(opts.master, what));
      body.nest(c.IFLA_LINKINFO, (li) => {
        li.kind(c.IFLA_INFO_KIND, 'veth');
        li.nest(c.IFLA_INFO_DATA, (d) => d.bytes(c.VETH_INFO_PEER, peer.toBuffer()));
      });
      const replies = await this.request(c.RTM_NEWLINK, c.NLM_F_CREATE | c.NLM_F_EXCL | c.NLM_F_ECHO, body.toBuffer());
      return replies.map(parseLink).find((l) => l.name === name);
    } catch (err) {
      if (hasCode(err, 'EEXIST')) {
        const here = await this.getLink(name).catch(() => undefined);
        const taken = here ? `"${name}"${this.where}` : `"${peerName}" in ${opts.peerNetnsPath ?? 'this namespace'}`;
        throw new CtnetError(ErrorCode.exists, `failed to ${what}: a link named ${taken} already exists`, { cause: err });
      }
      throw err instanceof CtnetError ? err : wrapError(what, err);
    } finally {
      if (peerFd !== undefined) closeSync(peerFd);
    }
  }

  /** Deletes a link (for a veth, both ends). False if there was no such link. */
  async deleteLink(name: string): Promise<boolean> {
    if (!isName(name)) return false;
    const body = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, name).toBuffer();
    try {
      await this.request(c.RTM_DELLINK, 0, body);
      return true;
    } catch (err) {
      if (hasCode(err, 'ENODEV')) return false;
      throw wrapError(`delete link ${name}${this.where}`, err);
    }
  }

  /** RTM_SETLINK addressed by name (the kernel resolves IFLA_IFNAME when the index is 0). */
  private async setLink(name: string, what: string, fill: (w: AttrWriter) => void, msg: c.IfInfoMsg = {}): Promise<void> {
    checkName(name, what);
    const body = new AttrWriter().raw(c.ifinfomsg(msg)).string(c.IFLA_IFNAME, name);
    fill(body);
    try {
      await this.request(c.RTM_SETLINK, 0, body.toBuffer());
    } catch (err) {
      if (hasCode(err, 'ENODEV')) throw this.noSuchLink(name, what, err);
      throw wrapError(what, err);
    }
  }

  /** Applies `change` to an existing link in one request (see LinkChange for the order the kernel follows). */
  async updateLink(link: LinkRef, change: LinkChange): Promise<void> {
    const what = `change link ${linkText(link)}${this.where}`;
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
    if (typeof link === 'string') {
      checkName(link, what);
      body.string(c.IFLA_IFNAME, link);
    }
    if (change.mac !== undefined) body.bytes(c.IFLA_ADDRESS, macOrThrow(change.mac, what));
    if (change.mtu !== undefined) body.u32(c.IFLA_MTU, change.mtu);
    const port = change.bridgePort;
    if (port && (port.hairpin !== undefined || port.isolated !== undefined)) bridgePortAttrs(body, port);
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
      await this.request(c.RTM_NEWLINK, 0, body.toBuffer());
    } catch (err) {
      if (hasCode(err, 'ENODEV')) throw this.noSuchLink(link, what, err);
      throw wrapError(what, err);
    }
  }

  /** RTM_NEWLINK on an existing link (no CREATE): the path that applies IFLA_LINKINFO changes. */
  private async change(body: Buffer, what: string, onError = wrapError): Promise<void> {
    try {
      await this.request(c.RTM_NEWLINK, 0, body);
    } catch (err) {
      throw onError(what, err);
    }
  }

  async setUp(name: string): Promise<void> {
    return this.setLink(name, `set link ${name} up${this.where}`, () => {}, { flags: c.IFF_UP, change: c.IFF_UP });
  }

  async setDown(name: string): Promise<void> {
    return this.setLink(name, `set link ${name} down${this.where}`, () => {}, { flags: 0, change: c.IFF_UP });
  }

  async setMaster(name: string, master: LinkRef | null): Promise<void> {
    const what =
      master === null ? `release link ${name} from its master${this.where}` : `attach link ${name} to ${master}${this.where}`;
    const index = master === null ? 0 : await this.indexOf(master, what);
    return this.setLink(name, what, (w) => w.u32(c.IFLA_MASTER, index));
  }

  /** Renames a link (it must be down). */
  async setName(name: string, newName: string): Promise<void> {
    const what = `rename link ${name} to ${newName}${this.where}`;
    checkName(newName, what);
    const link = await this.requireLink(name, what);
    try {
      await this.request(
        c.RTM_SETLINK,
        0,
        new AttrWriter()
          .raw(c.ifinfomsg({ index: link.index }))
          .string(c.IFLA_IFNAME, newName)
          .toBuffer(),
      );
    } catch (err) {
      if (hasCode(err, 'EEXIST')) throw new CtnetError(ErrorCode.exists, `failed to ${what}: that name is taken`, { cause: err });
      throw wrapError(what, err);
    }
  }

  /** Packet and byte counters of a link (IFLA_STATS64), or undefined if there is no such link. */
  async linkStats(name: string): Promise<LinkStats | undefined> {
    if (!isName(name)) return undefined;
    const body = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, name).toBuffer();
    try {
      const [msg] = await this.request(c.RTM_GETLINK, 0, body);
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
      if (hasCode(err, 'ENODEV')) return undefined;
      throw wrapError(`get statistics of link ${name}${this.where}`, err);
    }
  }

  /** Moves a link into the namespace at nsPath (it disappears from this one). */
  async moveToNetns(name: string, nsPath: string): Promise<void> {
    const fd = openNetns(nsPath);
    try {
      await this.setLink(name, `move link ${name}${this.where} to ${nsPath}`, (w) => w.u32(c.IFLA_NET_NS_FD, fd));
    } finally {
      closeSync(fd);
    }
  }

  // ---- addresses ----

  /**
   * Adds an address to a link. True if it added it; false if it was already there (IPv4: same address and
   * prefix; IPv6: same address) and `ignoreExists` is set.
   */
  async addAddress(
    ifname: LinkRef,
    cidr: string,
    opts: { ignoreExists?: boolean; noPrefixRoute?: boolean; noDad?: boolean } = {},
  ): Promise<boolean> {
    const what = `add address ${cidr} to ${linkText(ifname)}${this.where}`;
    const addr = cidrOrThrow(cidr, what);
    const index = await this.indexOf(ifname, what);
    const flags = (opts.noPrefixRoute ? c.IFA_F_NOPREFIXROUTE : 0) | (opts.noDad ? c.IFA_F_NODAD : 0);
    const body = addressBody(addr, index, flags);
    if (addr.addr.family === 4 && addr.prefix < 31) body.bytes(c.IFA_BROADCAST, ipBytes(lastOf(addr)));
    try {
      await this.request(c.RTM_NEWADDR, c.NLM_F_CREATE | c.NLM_F_EXCL, body.toBuffer());
      return true;
    } catch (err) {
      if (hasCode(err, 'ENODEV')) throw this.noSuchLink(ifname, what, err);
      if (hasCode(err, 'EEXIST')) {
        if (opts.ignoreExists) return false;
        throw new CtnetError(ErrorCode.exists, `failed to ${what}: it is already there`, { cause: err });
      }
      if (addr.addr.family === 6 && hasCode(err, 'EACCES')) {
        throw new CtnetError(ErrorCode.internal, `failed to ${what}: IPv6 is disabled on ${linkText(ifname)}`, {
          cause: err,
          hint: `set net.ipv6.conf.${typeof ifname === 'number' ? '<link>' : ifname}.disable_ipv6=0 (and net.ipv6.conf.all.disable_ipv6=0) in that namespace first`,
        });
      }
      throw wrapError(what, err);
    }
  }

  /** Removes an address; an address (or link) that is not there is fine. */
  async delAddress(ifname: string, cidr: string): Promise<void> {
    const what = `delete address ${cidr} from ${ifname}${this.where}`;
    const addr = cidrOrThrow(cidr, what);
    const link = await this.getLink(ifname);
    if (!link) return;
    try {
      await this.request(c.RTM_DELADDR, 0, addressBody(addr, link.index, 0).toBuffer());
    } catch (err) {
      if (hasCode(err, 'EADDRNOTAVAIL', 'ENOENT', 'ESRCH', 'ENODEV')) return;
      throw wrapError(what, err);
    }
  }

  /**
   * Addresses of one link (none if it does not exist) or of all links; of one family when `family` is given. The
   * kernel filters a dump by family but not by link (without strict checking, which the binding cannot enable), and a
   * host with a thousand veths has a thousand IPv6 link-local addresses: asking for IPv4 alone skips them.
   */
  async listAddresses(ifname?: string, family?: 4 | 6): Promise<AddressInfo[]> {
    let index: number | undefined;
    if (ifname !== undefined) {
      const link = await this.getLink(ifname);
      if (!link) return [];
      index = link.index;
    }
    try {
      const af = family === 4 ? c.AF_INET : family === 6 ? c.AF_INET6 : c.AF_UNSPEC;
      const msgs = await this.dump(c.RTM_GETADDR, c.ifaddrmsg({ family: af, prefixLen: 0, index: 0 }));
      const all = msgs.map(parseAddress).filter((a): a is AddressInfo => a !== undefined);
      return index === undefined ? all : all.filter((a) => a.ifindex === index);
    } catch (err) {
      throw wrapError(`list addresses${ifname ? ` of ${ifname}` : ''}${this.where}`, err);
    }
  }

  // ---- routes ----

  async addRoute(route: RouteSpec, opts: { ignoreExists?: boolean } = {}): Promise<void> {
    const what = `add route ${describeRoute(route)}${this.where}`;
    const body = await this.routeBody(route, what, false);
    try {
      await this.request(c.RTM_NEWROUTE, c.NLM_F_CREATE | c.NLM_F_EXCL, body);
    } catch (err) {
      if (hasCode(err, 'EEXIST')) {
        if (opts.ignoreExists) return;
        throw new CtnetError(ErrorCode.exists, `failed to ${what}: it is already there`, { cause: err });
      }
      throw wrapError(what, err);
    }
  }

  /** Removes a route; a route (or device) that is not there is fine. */
  async delRoute(route: RouteSpec): Promise<void> {
    const what = `delete route ${describeRoute(route)}${this.where}`;
    let body: Buffer;
    try {
      body = await this.routeBody(route, what, true);
    } catch (err) {
      if (err instanceof CtnetError && /no link (named|with index)/.test(err.message)) return;
      throw err;
    }
    try {
      await this.request(c.RTM_DELROUTE, 0, body);
    } catch (err) {
      if (hasCode(err, 'ESRCH', 'ENOENT', 'ENODEV')) return;
      throw wrapError(what, err);
    }
  }

  private async routeBody(route: RouteSpec, what: string, forDelete: boolean): Promise<Buffer> {
    const dst = cidrOrThrow(route.dst, what);
    const gw = route.gw === undefined ? undefined : ipOrThrow(route.gw, what);
    if (gw && gw.family !== dst.addr.family) {
      throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: gateway ${route.gw} is not IPv${dst.addr.family}`);
    }
    const oif = route.dev === undefined ? undefined : await this.indexOf(route.dev, what);
    const table = route.table ?? c.RT_TABLE_MAIN;
    const family = dst.addr.family === 4 ? c.AF_INET : c.AF_INET6;
    const scope = forDelete
      ? c.RT_SCOPE_NOWHERE
      : (route.scope ?? (gw === undefined && oif !== undefined ? c.RT_SCOPE_LINK : c.RT_SCOPE_UNIVERSE));
    const header = c.rtmsg({
      family,
      dstLen: dst.prefix,
      table,
      protocol: forDelete ? 0 : c.RTPROT_BOOT,
      scope,
      type: forDelete ? 0 : c.RTN_UNICAST,
    });
    const body = new AttrWriter().raw(header);
    if (dst.prefix > 0) body.bytes(c.RTA_DST, ipBytes(networkOf(dst)));
    if (gw) body.bytes(c.RTA_GATEWAY, ipBytes(gw));
    if (oif !== undefined) body.u32(c.RTA_OIF, oif);
    if (route.priority !== undefined) body.u32(c.RTA_PRIORITY, route.priority);
    body.u32(c.RTA_TABLE, table);
    if (!forDelete && (route.mtu || route.advmss)) {
      body.nest(c.RTA_METRICS, (m) => {
        if (route.mtu) m.u32(c.RTAX_MTU, route.mtu);
        if (route.advmss) m.u32(c.RTAX_ADVMSS, route.advmss);
      });
    }
    return body.toBuffer();
  }

  /** Routes of one family (or both) in one table (main by default; 'all' for every table). */
  async listRoutes(family?: 4 | 6, opts: { table?: number | 'all' } = {}): Promise<RouteInfo[]> {
    const af = family === undefined ? c.AF_UNSPEC : family === 4 ? c.AF_INET : c.AF_INET6;
    const table = opts.table ?? c.RT_TABLE_MAIN;
    try {
      const msgs = await this.dump(c.RTM_GETROUTE, c.rtmsg({ family: af, table: 0 }));
      return msgs
        .map((m) => parseRoute(m))
        .filter((r): r is RouteInfo => r !== undefined && (table === 'all' || r.table === table));
    } catch (err) {
      throw wrapError(`list routes${this.where}`, err);
    }
  }

  /**
   * The route the kernel would use for a packet to `dst` (as `ip route get`), or undefined when
   * there is none (unreachable). `from`/`iif` ask for a forwarded packet's route.
   */
  async routeGet(dst: string, opts: { from?: string; iif?: string; oif?: string } = {}): Promise<RouteInfo | undefined> {
    const what = `look up the route to ${dst}${this.where}`;
    const target = ipOrThrow(dst, what);
    const body = new AttrWriter().raw(
      c.rtmsg({ family: target.family === 4 ? c.AF_INET : c.AF_INET6, dstLen: bitsOf(target.family), table: 0 }),
    );
    body.bytes(c.RTA_DST, ipBytes(target));
    if (opts.from !== undefined) body.bytes(c.RTA_SRC, ipBytes(ipOrThrow(opts.from, what)));
    if (opts.iif !== undefined) body.u32(c.RTA_IIF, (await this.requireLink(opts.iif, what)).index);
    if (opts.oif !== undefined) body.u32(c.RTA_OIF, (await this.requireLink(opts.oif, what)).index);
    try {
      const [msg] = await this.request(c.RTM_GETROUTE, 0, body.toBuffer());
      return msg ? parseRoute(msg, true) : undefined;
    } catch (err) {
      if (hasCode(err, 'ENETUNREACH', 'EHOSTUNREACH')) return undefined;
      throw wrapError(what, err);
    }
  }

  // ---- neighbours ----

  async listNeighbors(ifname?: string): Promise<NeighborInfo[]> {
    let index: number | undefined;
    if (ifname !== undefined) {
      const link = await this.getLink(ifname);
      if (!link) return [];
      index = link.index;
    }
    try {
      const msgs = await this.dump(c.RTM_GETNEIGH, c.ndmsg(c.AF_UNSPEC));
      const all = msgs.map(parseNeighbor).filter((n): n is NeighborInfo => n !== undefined);
      return index === undefined ? all : all.filter((n) => n.ifindex === index);
    } catch (err) {
      throw wrapError(`list neighbours${ifname ? ` of ${ifname}` : ''}${this.where}`, err);
    }
  }

  // ---- bridge VLANs ----

  /** Adds VLAN `vid` to a bridge port (or to the bridge itself, as `bridge vlan add … self`). */
  async bridgeVlanAdd(port: string, vid: number, opts: { pvid?: boolean; untagged?: boolean } = {}): Promise<void> {
    const what = `add VLAN ${vid} to bridge port ${port}${this.where}`;
    const flags = (opts.pvid ? c.BRIDGE_VLAN_INFO_PVID : 0) | (opts.untagged ? c.BRIDGE_VLAN_INFO_UNTAGGED : 0);
    const body = await this.vlanBody(port, vid, flags, what);
    try {
      await this.request(c.RTM_SETLINK, 0, body);
    } catch (err) {
      throw vlanError(what, err);
    }
  }

  /** Removes VLAN `vid` from a bridge port; a VLAN (or port) that is not there is fine. */
  async bridgeVlanDel(port: string, vid: number): Promise<void> {
    const what = `delete VLAN ${vid} from bridge port ${port}${this.where}`;
    if (!(await this.getLink(port))) return;
    const body = await this.vlanBody(port, vid, 0, what);
    try {
      await this.request(c.RTM_DELLINK, 0, body);
    } catch (err) {
      if (hasCode(err, 'ENOENT', 'ENODEV')) return;
      throw vlanError(what, err);
    }
  }

  private async vlanBody(port: string, vid: number, flags: number, what: string): Promise<Buffer> {
    if (!Number.isInteger(vid) || vid < 1 || vid > 4094) {
      throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: VLAN id must be 1..4094`);
    }
    const link = await this.requireLink(port, what);
    const info = Buffer.alloc(4);
    info.writeUInt16LE(flags, 0);
    info.writeUInt16LE(vid, 2);
    return new AttrWriter()
      .raw(c.ifinfomsg({ family: c.AF_BRIDGE, index: link.index }))
      .nest(c.IFLA_AF_SPEC, (spec) => {
        if (link.kind === 'bridge') spec.u16(c.IFLA_BRIDGE_FLAGS, c.BRIDGE_FLAGS_SELF);
        spec.bytes(c.IFLA_BRIDGE_VLAN_INFO, info);
      })
      .toBuffer();
  }

  /** The VLANs of one bridge port (as `bridge vlan show dev PORT`). */
  async bridgeVlans(port: string): Promise<BridgeVlanInfo[]> {
    const link = await this.getLink(port);
    if (!link) return [];
    const body = new AttrWriter()
      .raw(c.ifinfomsg({ family: c.AF_BRIDGE }))
      .u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_BRVLAN)
      .toBuffer();
    try {
      const msgs = await this.dump(c.RTM_GETLINK, body);
      const vlans: BridgeVlanInfo[] = [];
      for (const m of msgs) {
        if (m.readInt32LE(4) !== link.index) continue;
        const spec = parseAttrs(m, 16).get(c.IFLA_AF_SPEC);
        if (!spec) continue;
        for (const [type, v] of parseAttrList(spec)) {
          if (type !== c.IFLA_BRIDGE_VLAN_INFO || v.length < 4) continue;
          const f = v.readUInt16LE(0);
          vlans.push({
            vid: v.readUInt16LE(2),
            pvid: (f & c.BRIDGE_VLAN_INFO_PVID) !== 0,
            untagged: (f & c.BRIDGE_VLAN_INFO_UNTAGGED) !== 0,
          });
        }
      }
      return vlans;
    } catch (err) {
      throw wrapError(`list VLANs of ${port}${this.where}`, err);
    }
  }
}

/** Bridge VLAN calls fail with EOPNOTSUPP on kernels built without CONFIG_BRIDGE_VLAN_FILTERING. */
function vlanError(what: string, err: unknown): CtnetError {
  if (!hasCode(err, 'EOPNOTSUPP', 'ENOTSUP')) return wrapError(what, err);
  return new CtnetError(ErrorCode.internal, `failed to ${what}: this kernel's bridge has no VLAN support`, {
    cause: err,
    hint: 'the kernel needs CONFIG_BRIDGE_VLAN_FILTERING; use a network without "vlan" here',
  });
}

/** IFLA_LINKINFO with a bridge port's flags (the link must already be a port of a bridge). */
function bridgePortAttrs(body: AttrWriter, port: { hairpin?: boolean; isolated?: boolean }): void {
  body.nest(c.IFLA_LINKINFO, (li) => {
    li.kind(c.IFLA_INFO_SLAVE_KIND, 'bridge');
    li.nest(c.IFLA_INFO_SLAVE_DATA, (d) => {
      if (port.hairpin !== undefined) d.u8(c.IFLA_BRPORT_MODE, port.hairpin ? 1 : 0);
      if (port.isolated !== undefined) d.u8(c.IFLA_BRPORT_ISOLATED, port.isolated ? 1 : 0);
    });
  });
}

function linkText(link: LinkRef): string {
  return typeof link === 'number' ? `link #${link}` : link;
}

function checkName(name: string, what: string): void {
  if (!isName(name) || /[/\s:]/.test(name)) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `failed to ${what}: "${name}" is not a valid interface name (1-15 bytes, no '/', ':' or spaces)`,
    );
  }
}

function macOrThrow(mac: string, what: string): Buffer {
  const bytes = parseMac(mac);
  if (!bytes) throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: "${mac}" is not a MAC address`);
  return bytes;
}

function addressBody(cidr: Cidr, index: number, flags: number): AttrWriter {
  const family = cidr.addr.family === 4 ? c.AF_INET : c.AF_INET6;
  const bytes = ipBytes(cidr.addr);
  const body = new AttrWriter()
    .raw(c.ifaddrmsg({ family, prefixLen: cidr.prefix, flags, index }))
    .bytes(c.IFA_LOCAL, bytes)
    .bytes(c.IFA_ADDRESS, bytes);
  if (flags > 0xff) body.u32(c.IFA_FLAGS, flags);
  return body;
}

function describeRoute(r: RouteSpec): string {
  return `${r.dst}${r.gw ? ` via ${r.gw}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.table ? ` table ${r.table}` : ''}`;
}

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

function parseAddress(m: Buffer): AddressInfo | undefined {
  const family = m.readUInt8(0);
  if (family !== c.AF_INET && family !== c.AF_INET6) return undefined;
  const prefixLen = m.readUInt8(1);
  const a = parseAttrs(m, 8);
  const flags = attrU32(a, c.IFA_FLAGS) ?? m.readUInt8(2);
  const raw = family === c.AF_INET ? (a.get(c.IFA_LOCAL) ?? a.get(c.IFA_ADDRESS)) : (a.get(c.IFA_ADDRESS) ?? a.get(c.IFA_LOCAL));
  if (!raw) return undefined;
  const address = ipText(raw);
  return {
    ifindex: m.readUInt32LE(4),
    family: family === c.AF_INET ? 4 : 6,
    address,
    prefixLen,
    cidr: `${address}/${prefixLen}`,
    tentative: (flags & c.IFA_F_TENTATIVE) !== 0,
    dadFailed: (flags & c.IFA_F_DADFAILED) !== 0,
    scope: m.readUInt8(3),
  };
}

function parseRoute(m: Buffer, keepCloned = false): RouteInfo | undefined {
  const family = m.readUInt8(0);
  if (family !== c.AF_INET && family !== c.AF_INET6) return undefined;
  // Dumps may include cached (cloned) routes; a route lookup's answer is always marked cloned.
  if (!keepCloned && m.readUInt32LE(8) & c.RTM_F_CLONED) return undefined;
  const dstLen = m.readUInt8(1);
  const a = parseAttrs(m, 12);
  const dstBytes = a.get(c.RTA_DST) ?? Buffer.alloc(family === c.AF_INET ? 4 : 16);
  const route: RouteInfo = {
    family: family === c.AF_INET ? 4 : 6,
    dst: `${ipText(dstBytes)}/${dstLen}`,
    table: attrU32(a, c.RTA_TABLE) ?? m.readUInt8(4),
    scope: m.readUInt8(6),
    protocol: m.readUInt8(5),
    type: m.readUInt8(7),
  };
  const gw = a.get(c.RTA_GATEWAY);
  if (gw) route.gw = ipText(gw);
  const prefsrc = a.get(c.RTA_PREFSRC);
  if (prefsrc) route.prefsrc = ipText(prefsrc);
  const oif = attrU32(a, c.RTA_OIF);
  if (oif !== undefined) route.oif = oif;
  const priority = attrU32(a, c.RTA_PRIORITY);
  if (priority !== undefined) route.priority = priority;
  const metrics = a.get(c.RTA_METRICS);
  if (metrics) {
    const mx = parseAttrs(metrics);
    const mtu = attrU32(mx, c.RTAX_MTU);
    if (mtu !== undefined) route.mtu = mtu;
    const advmss = attrU32(mx, c.RTAX_ADVMSS);
    if (advmss !== undefined) route.advmss = advmss;
  }
  return route;
}

function parseNeighbor(m: Buffer): NeighborInfo | undefined {
  const family = m.readUInt8(0);
  if (family !== c.AF_INET && family !== c.AF_INET6) return undefined;
  const a = parseAttrs(m, 12);
  const dst = a.get(c.NDA_DST);
  if (!dst) return undefined;
  const n: NeighborInfo = { ifindex: m.readInt32LE(4), address: ipText(dst), state: m.readUInt16LE(8) };
  const ll = a.get(c.NDA_LLADDR);
  if (ll && ll.length > 0) n.mac = formatMac(ll);
  return n;
}

/**
 * Runs `fn` with a netlink socket bound to the namespace at nsPath (undefined: our own). The
 * socket is created while the main thread is switched into that namespace and closed when `fn`
 * settles, so it never keeps the event loop alive.
 */
export async function withNetlink<T>(nsPath: string | undefined, fn: (nl: Netlink) => Promise<T>): Promise<T> {
  let socket: RtnlSocket;
  let netns: string;
  try {
    [socket, netns] = inNetns(nsPath, () => [new RtnlSocket(), threadNetnsKey()] as const);
  } catch (err) {
    if (err instanceof CtnetError) throw err;
    throw wrapError(`open a netlink socket${nsPath ? ` in ${nsPath}` : ''}`, err);
  }
  let nl: Netlink;
  try {
    nl = new Netlink(socket, nsPath, netns);
  } catch (err) {
    socket.close();
    throw err;
  }
  try {
    return await fn(nl);
  } finally {
    nl.close();
  }
}

/**
 * Deletes a link (for a veth, both ends) as Netlink.deleteLink does, without waiting for the kernel's cleanup.
 *
 * Unregistering a device ends with the kernel waiting for RCU (15–40 ms, whatever the number of links), inside
 * the send of the request. So the request is sent from a worker thread, and it asks for an echo: the kernel
 * sends the RTM_DELLINK notification back when the device is unregistered, before that wait. One request that
 * needs the RTNL lock after it (a lookup of the name) then ends once the whole batch is done (a veth's peer is
 * unregistered right after it, under the same lock). What remains of the kernel's work runs on: JavaScript
 * and the caller go on meanwhile. A kernel that does not echo (before 6.3) answers at the end, as before.
 * False if there was no such link.
 */
export async function deleteLinkOffThread(nsPath: string | undefined, name: string): Promise<boolean> {
  if (!isName(name)) return false;
  const what = `delete link ${name}${nsPath === undefined ? '' : ` in ${nsPath}`}`;
  let fd: number;
  try {
    fd = openDeleteSocket(nsPath);
  } catch (err) {
    if (err instanceof CtnetError) throw err;
    throw wrapError(`open a netlink socket${nsPath === undefined ? '' : ` in ${nsPath}`}`, err);
  }
  const body = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, name).toBuffer();
  // Unique in the process: the kernel echoes the peer's removal to the peer's namespace with this number.
  const seq = nextNetlinkSeq();
  const msg = Buffer.concat(encodeNetlinkMessage(c.RTM_DELLINK, c.NLM_F_ACK | c.NLM_F_ECHO, seq, body));
  let sendError: unknown;
  let sent = false;
  const sending = sendOnWorker(fd, msg).then(
    () => {
      sent = true;
    },
    (err) => {
      sendError = err;
    },
  );
  const reading = awaitDeleteAnswer(
    fd,
    seq,
    name,
    () => sendError,
    () => sent,
  );
  // The socket stays open until both the worker and the reader are done with it (the worker maybe long after
  // this function has returned).
  void Promise.allSettled([sending, reading]).then(() => closeSync(fd));
  try {
    const outcome = await reading;
    if (outcome === 'echoed') await withNetlink(nsPath, (nl) => nl.getLink(name));
    return true;
  } catch (err) {
    if (hasCode(err, 'ENODEV')) return false;
    throw wrapError(what, err);
  }
}

/** A raw rtnetlink socket in the namespace at nsPath, checked to be there by asking the kernel (SIOCGSKNS). */
function openDeleteSocket(nsPath: string | undefined): number {
  const [fd, netns] = inNetns(nsPath, () => [createNetlinkSocket(), threadNetnsKey()] as const);
  try {
    if (nsPath !== undefined && socketNetnsIdentity(fd) !== netns) {
      throw new CtnetError(ErrorCode.internal, `netlink socket for ${nsPath} was made in another namespace`);
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * Reads the socket without blocking, every millisecond, until the kernel echoes the delete ('echoed'), answers
 * it ('answered'; an error answer throws), or the send failed.
 */
async function awaitDeleteAnswer(
  fd: number,
  seq: number,
  name: string,
  sendError: () => unknown,
  sent: () => boolean,
): Promise<'echoed' | 'answered'> {
  const buf = Buffer.alloc(16384);
  for (;;) {
    // The kernel queues its answer before send returns: once sent, one more look must find it.
    const wasSent = sent();
    for (let n = recvNow(fd, buf); n !== undefined; n = recvNow(fd, buf)) {
      for (let at = 0; at + 16 <= n; ) {
        const len = buf.readUInt32LE(at);
        if (len < 16) break;
        const type = buf.readUInt16LE(at + 4);
        const message = buf.subarray(at + 16, Math.min(at + len, n));
        if (buf.readUInt32LE(at + 8) === seq) {
          // The echo of our own link (the peer's goes to the peer's namespace), and the answer that quotes our request.
          if (type === c.RTM_DELLINK && parseLink(message).name === name) return 'echoed';
          if (
            type === c.NLMSG_ERROR &&
            message.length >= 20 &&
            message.readUInt16LE(8) === c.RTM_DELLINK &&
            message.readUInt32LE(12) === seq
          ) {
            const errno = message.readInt32LE(0);
            if (errno < 0) throw new NetlinkError(errno);
            return 'answered';
          }
        }
        at += (len + 3) & ~3;
      }
    }
    const err = sendError();
    if (err) throw err;
    if (wasSent) throw new Error('the kernel sent the request no answer');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
