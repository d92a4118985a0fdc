/**
 * Reading kernel state for the debugger with `ip -j` (JSON), in the current network namespace or,
 * through nsenter, in another one. A debugging command pays a few milliseconds per read, which is
 * fine for a person at a terminal and keeps these reads independent of the netlink bindings.
 */
import { run } from '../core/index.js';

export interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  master?: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  address?: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_data?: Record<string, unknown> };
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
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  protocol?: string;
  scope?: string;
  type?: string;
  flags?: string[];
}

export interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

/** Runs a program in `netns` (a path), or here when it is undefined. */
export async function runIn(netns: string | undefined, file: string, args: string[], allowFailure = true) {
  return netns
    ? run('nsenter', [`--net=${netns}`, file, ...args], { allowFailure, timeoutMs: 10_000 })
    : run(file, args, { allowFailure, timeoutMs: 10_000 });
}

async function ipJson<T>(netns: string | undefined, args: string[]): Promise<T[]> {
  const r = await runIn(netns, 'ip', ['-j', ...args]);
  if (r.code !== 0 || !r.stdout.trim()) return [];
  try {
    return JSON.parse(r.stdout) as T[];
  } catch {
    return [];
  }
}

export function links(netns?: string): Promise<IpLink[]> {
  return ipJson<IpLink>(netns, ['-d', 'addr', 'show']);
}

/** Routes of both families in the main table, with "default" spelled as a CIDR. */
export async function routes(netns?: string): Promise<IpRoute[]> {
  const [v4, v6] = await Promise.all([
    ipJson<IpRoute>(netns, ['-4', 'route', 'show']),
    ipJson<IpRoute>(netns, ['-6', 'route', 'show']),
  ]);
  return [
    ...v4.map((r) => ({ ...r, dst: r.dst === 'default' ? '0.0.0.0/0' : r.dst })),
    ...v6.map((r) => ({ ...r, dst: r.dst === 'default' ? '::/0' : r.dst })),
  ];
}

export function neighbours(netns?: string): Promise<IpNeigh[]> {
  return ipJson<IpNeigh>(netns, ['neigh', 'show']);
}

/** `ip route get ADDR`: which way the kernel would send a packet. */
export async function routeGet(address: string, netns?: string): Promise<IpRoute | undefined> {
  return (await ipJson<IpRoute>(netns, ['route', 'get', address]))[0];
}

/** The named network namespaces (`ip netns`), with their paths. */
export async function namedNetns(): Promise<{ name: string; path: string; id?: number }[]> {
  const list = await ipJson<{ name: string; id?: number }>(undefined, ['netns', 'list']);
  return list.map((n) => ({ name: n.name, path: `/run/netns/${n.name}`, id: n.id }));
}

/** Reads a sysctl of the namespace (e.g. "net/ipv4/ip_forward"); undefined when absent. */
export async function sysctl(key: string, netns?: string): Promise<string | undefined> {
  const r = await runIn(netns, 'cat', [`/proc/sys/${key}`]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}
