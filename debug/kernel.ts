/**
 * Reading kernel state for the debugger through netns/ (rtnetlink bound to the namespace, sysctls and /proc files
 * read with the main thread switched into it), in the current network namespace or in another one given by path.
 * The shapes are those `ip -j` prints (names for indexes, scopes and states), which the views and their JSON use.
 */
import { readFileSync } from 'node:fs';
import { inNetns, type LinkInfo, listNetns, type Netlink, type RouteInfo, readSysctl, withNetlink } from '../netns/index.js';

export interface IpLink {
  ifindex: number;
  ifname: string;
  /** IFF_* flags by name; the views read UP (administratively up) and LOWER_UP (carrier). */
  flags: string[];
  mtu: number;
  /** RFC 2863 operational state, upper case as `ip` prints it: UP, DOWN, LOWERLAYERDOWN, UNKNOWN, … */
  operstate: string;
  /** The master device's name (the bridge a port hangs on). */
  master?: string;
  /** For a veth: the peer's index (in the namespace link_netnsid names, when set). */
  link_index?: number;
  link_netnsid?: number;
  /** The MAC address. */
  address?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: IpAddrInfo[];
}

export interface IpAddrInfo {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope: string;
  /** IPv6 duplicate address detection: not yet usable, or found in use elsewhere. */
  tentative?: boolean;
  dadfailed?: boolean;
}

export interface IpRoute {
  /** A CIDR ('0.0.0.0/0' / '::/0' for a default route); a host route without its /32 or /128, as `ip` shows it. */
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  protocol?: string;
  scope?: string;
  type?: string;
}

export interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

const scopeNames: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };
const protocolNames: Record<number, string> = { 1: 'redirect', 2: 'kernel', 3: 'boot', 4: 'static', 9: 'ra', 16: 'dhcp' };
const routeTypes: Record<number, string> = {
  1: 'unicast',
  2: 'local',
  3: 'broadcast',
  4: 'anycast',
  5: 'multicast',
  6: 'blackhole',
  7: 'unreachable',
  8: 'prohibit',
  9: 'throw',
};
/** NUD_* bits, as `ip neigh` names them. */
const nudStates: [number, string][] = [
  [0x01, 'INCOMPLETE'],
  [0x02, 'REACHABLE'],
  [0x04, 'STALE'],
  [0x08, 'DELAY'],
  [0x10, 'PROBE'],
  [0x20, 'FAILED'],
  [0x40, 'NOARP'],
  [0x80, 'PERMANENT'],
];
const nudNoarp = 0x40;

function withNames(names: Map<number, string>, r: RouteInfo): IpRoute {
  return {
    dst: r.dst.replace(/\/(32|128)$/, ''),
    ...(r.gw !== undefined && { gateway: r.gw }),
    ...(r.oif !== undefined && names.has(r.oif) && { dev: names.get(r.oif) }),
    ...(r.prefsrc !== undefined && { prefsrc: r.prefsrc }),
    // Left out where they are the default, as `ip` does: protocol boot, scope global, type unicast.
    ...(r.protocol !== 3 && { protocol: protocolNames[r.protocol] ?? String(r.protocol) }),
    ...(r.scope !== 0 && { scope: scopeNames[r.scope] ?? String(r.scope) }),
    ...(r.type !== 1 && { type: routeTypes[r.type] ?? String(r.type) }),
  };
}

async function linkNames(nl: Netlink): Promise<Map<number, string>> {
  return new Map((await nl.listLinks()).map((l) => [l.index, l.name]));
}

function ipLink(l: LinkInfo, names: Map<number, string>): IpLink {
  const flags = [...(l.up ? ['UP'] : []), ...(l.operState === 'up' ? ['LOWER_UP'] : []), ...(l.promisc ? ['PROMISC'] : [])];
  return {
    ifindex: l.index,
    ifname: l.name,
    flags,
    mtu: l.mtu,
    operstate: (l.operState ?? 'unknown').toUpperCase(),
    ...(l.master !== undefined && { master: names.get(l.master) }),
    ...(l.peerIndex !== undefined && { link_index: l.peerIndex }),
    ...(l.linkNetnsId !== undefined && { link_netnsid: l.linkNetnsId }),
    ...(l.mac !== undefined && { address: l.mac }),
    ...(l.kind !== undefined && { linkinfo: { info_kind: l.kind } }),
    addr_info: [],
  };
}

/** The links of the namespace with their addresses (as `ip -d addr show`). */
export function links(netns?: string): Promise<IpLink[]> {
  return withNetlink(netns, async (nl) => {
    const list = await nl.listLinks();
    const names = new Map(list.map((l) => [l.index, l.name]));
    const byIndex = new Map(list.map((l) => [l.index, ipLink(l, names)]));
    for (const a of await nl.listAddresses()) {
      byIndex.get(a.ifindex)?.addr_info?.push({
        family: a.family === 4 ? 'inet' : 'inet6',
        local: a.address,
        prefixlen: a.prefixLen,
        scope: scopeNames[a.scope] ?? String(a.scope),
        ...(a.tentative && { tentative: true }),
        ...(a.dadFailed && { dadfailed: true }),
      });
    }
    return [...byIndex.values()];
  });
}

/** Routes of both families in the main table (as `ip route show`). */
export function routes(netns?: string): Promise<IpRoute[]> {
  return withNetlink(netns, async (nl) => {
    const names = await linkNames(nl);
    return (await nl.listRoutes()).map((r) => withNames(names, r));
  });
}

/** Neighbour entries (as `ip neigh show`, which leaves out NOARP ones). */
export function neighbours(netns?: string): Promise<IpNeigh[]> {
  return withNetlink(netns, async (nl) => {
    const names = await linkNames(nl);
    return (await nl.listNeighbors())
      .filter((n) => !(n.state & nudNoarp))
      .map((n) => ({
        dst: n.ip,
        dev: names.get(n.ifindex) ?? String(n.ifindex),
        ...(n.mac !== undefined && { lladdr: n.mac }),
        state: nudStates.filter(([bit]) => n.state & bit).map(([, name]) => name),
      }));
  });
}

/** Which way the kernel would send a packet to `address` (as `ip route get`); undefined when unreachable. */
export function routeGet(address: string, netns?: string): Promise<IpRoute | undefined> {
  return withNetlink(netns, async (nl) => {
    const r = await nl.routeGet(address);
    return r && { ...withNames(await linkNames(nl), r), dst: address };
  });
}

/** The named network namespaces (the files under /run/netns), with their paths. */
export async function namedNetns(): Promise<{ name: string; path: string }[]> {
  return listNetns().map((path) => ({ name: path.slice(path.lastIndexOf('/') + 1), path }));
}

/** Reads a sysctl of the namespace (e.g. "net/ipv4/ip_forward"); undefined when absent or unreadable. */
export async function sysctl(key: string, netns?: string): Promise<string | undefined> {
  try {
    return readSysctl(netns, key)?.trim();
  } catch {
    return undefined;
  }
}

/** A /proc/net file (e.g. "tcp6") as the namespace shows it: read with the main thread inside it. */
export function procNet(file: string, netns?: string): string | undefined {
  try {
    return inNetns(netns, () => readFileSync(`/proc/net/${file}`, 'utf8'));
  } catch {
    return undefined;
  }
}
