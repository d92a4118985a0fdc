/**
 * `debug inspect`: everything about one container's network in one structure — its links,
 * addresses, routes and neighbours, the host end of each veth and the bridge it hangs on, the
 * published ports with the rules that implement them and their packet counters, the IPAM leases.
 */
import { type ContainerView, type CtnetPaths, type Lease, NetworkStore, netnsPathOf, readLeases } from '../network/index.js';
import { describeFirewall, dnatTarget, type RuleLine, rulesMentioning } from './firewall.js';
import { type IpLink, type IpNeigh, type IpRoute, links, neighbours, routes } from './kernel.js';

export interface LinkReport {
  name: string;
  kind: string;
  state: string;
  up: boolean;
  mtu: number;
  mac?: string;
  addresses: string[];
  /** For a veth: its host end, and the bridge that end is enslaved to. */
  peer?: { name: string; ifindex: number; up: boolean; state: string; master?: string; masterUp?: boolean };
}

export interface PortReport {
  hostIP?: string;
  hostPort: number;
  containerPort: number;
  protocol: string;
  rules: RuleLine[];
}

export interface InspectReport {
  id: string;
  name?: string;
  status?: string;
  pid?: number;
  netns: string;
  links: LinkReport[];
  routes: IpRoute[];
  neighbours: IpNeigh[];
  ports: PortReport[];
  /** Every rule that mentions one of the container's addresses (DNAT, masquerade, filters). */
  rules: RuleLine[];
  leases: (Lease & { network: string })[];
}

export function isUp(l: IpLink): boolean {
  return l.flags.includes('UP');
}

export function kindOf(l: IpLink): string {
  if (l.ifname === 'lo') return 'loopback';
  return l.linkinfo?.info_kind ?? 'device';
}

/** Host-side view of a container veth: the link whose ifindex is the container end's peer index. */
export function peerOf(ctr: IpLink, host: IpLink[]): LinkReport['peer'] {
  if (kindOf(ctr) !== 'veth' || ctr.link_index === undefined) return undefined;
  const peer = host.find((h) => h.ifindex === ctr.link_index && kindOf(h) === 'veth');
  if (!peer) return undefined;
  const master = peer.master ? host.find((h) => h.ifname === peer.master) : undefined;
  return {
    name: peer.ifname,
    ifindex: peer.ifindex,
    up: isUp(peer),
    state: peer.operstate,
    master: peer.master,
    masterUp: master ? isUp(master) : undefined,
  };
}

export async function readFirewallRules(): Promise<RuleLine[]> {
  const [xtables, nftables] = await Promise.all([describeFirewall('iptables'), describeFirewall('nftables')]);
  const xt = xtables?.rules ?? [];
  // iptables-nft rules also show in `nft list ruleset`; keep the nft view only for native nft tables.
  const xtTables = new Set(xt.map((r) => r.table));
  return [...xt, ...(nftables?.rules ?? []).filter((r) => !xtTables.has(r.table))];
}

export async function inspectContainer(c: ContainerView, paths: CtnetPaths): Promise<InspectReport> {
  const netns = netnsPathOf(c);
  const [ctrLinks, hostLinks, ctrRoutes, neigh, rules] = await Promise.all([
    links(netns),
    links(),
    routes(netns),
    neighbours(netns),
    readFirewallRules(),
  ]);
  const linkReports: LinkReport[] = ctrLinks.map((l) => ({
    name: l.ifname,
    kind: kindOf(l),
    state: l.operstate,
    up: isUp(l),
    mtu: l.mtu,
    mac: l.address,
    addresses: (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
    peer: peerOf(l, hostLinks),
  }));
  const addresses = ctrLinks.flatMap((l) => (l.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => a.local));
  const mentioning = addresses.flatMap((a) => rulesMentioning(rules, a));
  const ports: PortReport[] = c.ports.map((p) => ({
    ...p,
    rules: mentioning.filter((r) => {
      const target = dnatTarget(r.rule);
      return target?.endsWith(`:${p.containerPort}`) === true;
    }),
  }));
  const store = new NetworkStore(paths);
  const leases: InspectReport['leases'] = [];
  for (const net of store.all()) {
    for (const lease of readLeases(net)) if (lease.containerId === c.id) leases.push({ ...lease, network: net.list.name });
  }
  return {
    id: c.id,
    name: c.name,
    status: c.status,
    pid: c.pid,
    netns,
    links: linkReports,
    routes: ctrRoutes,
    neighbours: neigh,
    ports,
    rules: [...new Set(mentioning)],
    leases,
  };
}
