/**
 * Encoding and decoding of the rtnetlink messages we use: fixed headers (ifinfomsg, ifaddrmsg,
 * rtmsg, ndmsg) followed by attributes (length u16, type u16, payload padded to 4 bytes).
 *
 * We encode requests ourselves instead of through the `netlink` package's struct layer: its
 * typings leave nested link data (IFLA_LINKINFO, veth peers, IFLA_AF_SPEC) as raw buffers anyway,
 * and its parser drops replies it cannot decode (attributes newer than the library), which would
 * hang a request. From `netlink` we use the socket, sequence numbers, ACKs and multipart replies.
 * Byte order is the host's (netlink is host-endian); this module assumes little-endian (x86-64, arm64).
 */

// Message types (linux/netlink.h, linux/rtnetlink.h).
export const NLMSG_ERROR = 2;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_GETNEIGH = 30;

// Request flags (linux/netlink.h); REQUEST and ACK are added by the socket layer.
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

// Interface flags (linux/if.h).
export const IFF_UP = 0x1;
export const IFF_PROMISC = 0x100;

// Link attributes (linux/if_link.h).
export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_MASTER = 10;
export const IFLA_PROTINFO = 12;
export const IFLA_OPERSTATE = 16;
export const IFLA_LINKINFO = 18;
export const IFLA_AF_SPEC = 26;
export const IFLA_STATS64 = 23;
export const IFLA_EXT_MASK = 29;
export const IFLA_NET_NS_FD = 28;
export const IFLA_LINK_NETNSID = 37;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_INFO_SLAVE_KIND = 4;
export const IFLA_INFO_SLAVE_DATA = 5;
export const VETH_INFO_PEER = 1;
export const IFLA_BR_VLAN_FILTERING = 7;
export const IFLA_BRPORT_MODE = 4;
export const IFLA_BRPORT_ISOLATED = 33;
export const IFLA_BRIDGE_FLAGS = 0;
export const IFLA_BRIDGE_VLAN_INFO = 2;
export const BRIDGE_FLAGS_SELF = 2;
export const BRIDGE_VLAN_INFO_PVID = 0x2;
export const BRIDGE_VLAN_INFO_UNTAGGED = 0x4;
// IFLA_AF_SPEC per family (linux/if_link.h): IPv4 devconf, IPv6 link-local address generation.
export const IFLA_INET_CONF = 1;
export const IFLA_INET6_ADDR_GEN_MODE = 8;
export const IN6_ADDR_GEN_MODE_NONE = 1;
/**
 * IPv4 devconf entries by sysctl name (linux/ip.h IPV4_DEVCONF_*): attribute types inside IFLA_INET_CONF. Only
 * entries whose sysctl write does nothing but store the value: for forwarding, rp_filter, proxy_arp, accept_local
 * and route_localnet the sysctl handler does more (LRO off, route cache flush, a netconf event), which this skips.
 */
export const IPV4_DEVCONF = {
  arp_announce: 18,
  arp_ignore: 19,
  arp_accept: 21,
  arp_notify: 22,
} as const;
export const RTEXT_FILTER_BRVLAN = 0x2;
export const RTEXT_FILTER_SKIP_STATS = 0x8;

// Address attributes (linux/if_addr.h).
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_BROADCAST = 4;
export const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_NOPREFIXROUTE = 0x200;

// Route attributes and values (linux/rtnetlink.h).
export const RTA_DST = 1;
export const RTA_SRC = 2;
export const RTA_IIF = 3;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_METRICS = 8;
export const RTA_PREFSRC = 7;
export const RTA_TABLE = 15;
export const RTAX_MTU = 2;
export const RTAX_ADVMSS = 8;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_NOWHERE = 255;
export const RTN_UNICAST = 1;
export const RTM_F_CLONED = 0x200;

// Neighbour attributes (linux/neighbour.h).
export const NDA_DST = 1;
export const NDA_LLADDR = 2;

const NLA_TYPE_MASK = 0x3fff; // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

/** Builds an attribute stream; nest() writes a container attribute around what its callback adds. */
export class AttrWriter {
  private readonly parts: Buffer[] = [];
  private length = 0;

  raw(buf: Buffer): this {
    this.parts.push(buf);
    this.length += buf.length;
    return this;
  }

  bytes(type: number, payload: Buffer): this {
    const len = 4 + payload.length;
    const header = Buffer.alloc(4);
    header.writeUInt16LE(len, 0);
    header.writeUInt16LE(type, 2);
    this.raw(header).raw(payload);
    const pad = (4 - (len % 4)) % 4;
    if (pad) this.raw(Buffer.alloc(pad));
    return this;
  }

  u8(type: number, value: number): this {
    return this.bytes(type, Buffer.from([value]));
  }

  u16(type: number, value: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value);
    return this.bytes(type, b);
  }

  u32(type: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0);
    return this.bytes(type, b);
  }

  /** A NUL-terminated string (IFLA_IFNAME and most string attributes). */
  string(type: number, value: string): this {
    return this.bytes(type, Buffer.from(`${value}\0`, 'utf8'));
  }

  /** A string without terminator: IFLA_INFO_KIND, as iproute2 sends it. */
  kind(type: number, value: string): this {
    return this.bytes(type, Buffer.from(value, 'utf8'));
  }

  nest(type: number, fill: (w: AttrWriter) => void): this {
    const inner = new AttrWriter();
    fill(inner);
    return this.bytes(type, inner.toBuffer());
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

export interface IfInfoMsg {
  family?: number;
  type?: number;
  index?: number;
  flags?: number;
  change?: number;
}

export function ifinfomsg(m: IfInfoMsg = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(m.family ?? AF_UNSPEC, 0);
  b.writeUInt16LE(m.type ?? 0, 2);
  b.writeInt32LE(m.index ?? 0, 4);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((m.change ?? 0) >>> 0, 12);
  return b;
}

export function ifaddrmsg(m: { family: number; prefixLen: number; flags?: number; scope?: number; index: number }): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.prefixLen, 1);
  b.writeUInt8((m.flags ?? 0) & 0xff, 2);
  b.writeUInt8(m.scope ?? 0, 3);
  b.writeUInt32LE(m.index, 4);
  return b;
}

export interface RtMsg {
  family: number;
  dstLen?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  flags?: number;
}

export function rtmsg(m: RtMsg): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.dstLen ?? 0, 1);
  b.writeUInt8(0, 2); // src_len
  b.writeUInt8(0, 3); // tos
  b.writeUInt8((m.table ?? RT_TABLE_MAIN) > 255 ? 0 : (m.table ?? RT_TABLE_MAIN), 4);
  b.writeUInt8(m.protocol ?? 0, 5);
  b.writeUInt8(m.scope ?? RT_SCOPE_UNIVERSE, 6);
  b.writeUInt8(m.type ?? 0, 7);
  b.writeUInt32LE(m.flags ?? 0, 8);
  return b;
}

export function ndmsg(family: number, index = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  return b;
}

/** Attribute payloads by type (the last one wins for repeated types). */
export type Attrs = Map<number, Buffer>;

export function parseAttrs(buf: Buffer, offset = 0): Attrs {
  const attrs: Attrs = new Map();
  let pos = offset;
  while (pos + 4 <= buf.length) {
    const len = buf.readUInt16LE(pos);
    if (len < 4 || pos + len > buf.length) break;
    attrs.set(buf.readUInt16LE(pos + 2) & NLA_TYPE_MASK, buf.subarray(pos + 4, pos + len));
    pos += (len + 3) & ~3;
  }
  return attrs;
}

/** Every attribute in order, for streams where one type repeats (IFLA_BRIDGE_VLAN_INFO). */
export function parseAttrList(buf: Buffer): Array<[number, Buffer]> {
  const list: Array<[number, Buffer]> = [];
  let pos = 0;
  while (pos + 4 <= buf.length) {
    const len = buf.readUInt16LE(pos);
    if (len < 4 || pos + len > buf.length) break;
    list.push([buf.readUInt16LE(pos + 2) & NLA_TYPE_MASK, buf.subarray(pos + 4, pos + len)]);
    pos += (len + 3) & ~3;
  }
  return list;
}

export function attrU32(attrs: Attrs, type: number): number | undefined {
  const b = attrs.get(type);
  return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
}

export function attrU8(attrs: Attrs, type: number): number | undefined {
  const b = attrs.get(type);
  return b && b.length >= 1 ? b.readUInt8(0) : undefined;
}

export function attrString(attrs: Attrs, type: number): string | undefined {
  const b = attrs.get(type);
  if (!b) return undefined;
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}

export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function parseMac(mac: string): Buffer | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) return undefined;
  return Buffer.from(mac.split(':').map((x) => Number.parseInt(x, 16)));
}
