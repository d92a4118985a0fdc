/**
 * rtnetlink's part of the codec: message types, attribute numbers and the fixed headers (ifinfomsg, ifaddrmsg,
 * rtmsg, ndmsg) that come before a message's attributes. Attributes and framing are core's (core/netlink-codec.ts,
 * which also says why the `netlink` package's codec is not used). Host byte order, little-endian assumed.
 */

// Message types (linux/rtnetlink.h).
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

/** struct ndmsg: family, 3 pad bytes, ifindex (s32), state (u16), flags (u8), type (u8). */
export function ndmsg(family: number, index = 0, state = 0, flags = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt16LE(state, 8);
  b.writeUInt8(flags, 10);
  return b;
}
