/**
 * The node's data plane: the VXLAN link, and per peer a host-gw route or a VXLAN route + neighbour + FDB entry.
 * Everything is reconciled from the full list of peers against what the kernel holds (the agent's routes are
 * those of its route protocol; its neighbour and FDB entries are the permanent ones on its VXLAN link), so a
 * restarted agent fixes drift and removes what belongs to departed peers.
 */
import { CtnetError, ErrorCode, log } from '../core/index.js';
import {
  defaultVxlanPort,
  deleteOwnedRoute,
  delFdb,
  delNeighbour,
  ensureVxlan,
  listFdb,
  listNeighbours,
  listOwnedRoutes,
  type Netlink,
  nudPermanent,
  replaceOwnedRoute,
  setFdb,
  setNeighbour,
  vxlanOverheadV4,
  withNetlink,
  writeSysctl,
} from '../netns/index.js';
import { nodeRouteProtocol, vxlanLinkName } from './names.js';
import type { ProgrammedPeer } from './state.js';
import type { BackendChoice, NodeRecord } from './store.js';
import { nthAddress } from './subnets.js';

export interface LocalPlane {
  node: string;
  nodeIp: string;
  /** The link that holds nodeIp. */
  underlay: string;
  underlayMtu: number;
  subnet: string;
  choice: BackendChoice;
  vni: number;
  port: number;
  vtepMac: string;
}

export function usesVxlan(choice: BackendChoice): boolean {
  return choice !== 'host-gw';
}

/** The MTU of the node's pods: the underlay's, less the VXLAN overhead when packets may be encapsulated. */
export function podMtu(plane: Pick<LocalPlane, 'choice' | 'underlayMtu'>): number {
  return usesVxlan(plane.choice) ? plane.underlayMtu - vxlanOverheadV4 : plane.underlayMtu;
}

/** The link that holds `ip` in this namespace, and its MTU. */
export async function findUnderlay(ip: string): Promise<{ name: string; mtu: number }> {
  return withNetlink(undefined, async (nl) => {
    const addr = (await nl.listAddresses(undefined, 4)).find((a) => a.address === ip);
    const link = addr ? await nl.getLink(addr.ifindex) : undefined;
    if (!link) {
      throw new CtnetError(ErrorCode.invalidConfig, `no link of this host has the address ${ip}`, {
        hint: "--node-ip must be one of this host's own IPv4 addresses (the one other nodes reach it at)",
      });
    }
    return { name: link.name, mtu: link.mtu };
  });
}

/** The address of the link the default route (or else the first global IPv4 address) leaves by. */
export async function detectNodeIp(): Promise<string | undefined> {
  return withNetlink(undefined, async (nl) => {
    const routes = await nl.listRoutes(4);
    const def = routes.find((r) => r.dst === '0.0.0.0/0' && r.oif !== undefined);
    const addrs = (await nl.listAddresses(undefined, 4)).filter((a) => a.scope === 0);
    return (def ? addrs.find((a) => a.ifindex === def.oif) : undefined)?.address ?? addrs[0]?.address;
  });
}

/** Creates (or keeps) the VXLAN link when the backend may use it, else removes a leftover one; turns forwarding on. */
export async function setupLocal(plane: LocalPlane): Promise<string | undefined> {
  writeSysctl(undefined, 'net.ipv4.ip_forward', '1');
  const name = vxlanLinkName(plane.vni);
  return withNetlink(undefined, async (nl) => {
    for (const link of await nl.listLinks()) {
      if (link.kind === 'vxlan' && link.name.startsWith('ctnet.') && (link.name !== name || !usesVxlan(plane.choice))) {
        await nl.deleteLink(link.name);
      }
    }
    if (!usesVxlan(plane.choice)) return undefined;
    await ensureVxlan(nl, name, {
      vni: plane.vni,
      port: plane.port || defaultVxlanPort,
      local: plane.nodeIp,
      underlay: plane.underlay,
      mtu: plane.underlayMtu - vxlanOverheadV4,
      mac: plane.vtepMac,
    });
    // The subnet's network address on the VXLAN link: the source of the node's own packets to remote pods, and
    // the onlink gateway peers route this node's subnet through.
    const own = `${nthAddress(plane.subnet, 0)}/32`;
    for (const a of await nl.listAddresses(name, 4)) if (a.cidr !== own) await nl.delAddress(name, a.cidr);
    await nl.addAddress(name, own, { ignoreExists: true });
    return name;
  });
}

/** How this node reaches `peer`: host-gw when it is on-link (and allowed), VXLAN otherwise (when both have VTEPs). */
async function choose(nl: Netlink, plane: LocalPlane, peer: NodeRecord): Promise<ProgrammedPeer> {
  const route = await nl.routeGet(peer.nodeIp).catch(() => undefined);
  const onLink = route !== undefined && route.gw === undefined && route.type === 1;
  if (plane.choice === 'host-gw' || (plane.choice === 'auto' && onLink)) {
    if (onLink) return { record: peer, mode: 'host-gw' };
    return {
      record: peer,
      mode: 'unreachable',
      problem: `${peer.nodeIp} is not on this node's link: host-gw needs every node on one L2 segment (use --backend vxlan or auto)`,
    };
  }
  if (!peer.vtepMac) {
    return {
      record: peer,
      mode: 'unreachable',
      problem: `node "${peer.node}" runs --backend ${peer.backend}: it has no VXLAN endpoint`,
    };
  }
  if (!route) return { record: peer, mode: 'unreachable', problem: `no route to ${peer.nodeIp} on the underlay` };
  return { record: peer, mode: 'vxlan' };
}

interface WantedRoute {
  dst: string;
  gw: string;
  oif: number;
  onlink: boolean;
}

/** Programs every peer, removes what the agent owns for peers that are gone; returns how each peer is reached. */
export async function reconcilePeers(plane: LocalPlane, peers: readonly NodeRecord[]): Promise<ProgrammedPeer[]> {
  const vxName = usesVxlan(plane.choice) ? vxlanLinkName(plane.vni) : undefined;
  return withNetlink(undefined, async (nl) => {
    const underlay = await nl.getLink(plane.underlay);
    const vx = vxName ? await nl.getLink(vxName) : undefined;
    if (!underlay) throw new CtnetError(ErrorCode.internal, `the underlay link ${plane.underlay} is gone`);
    const programmed: ProgrammedPeer[] = [];
    const routes = new Map<string, WantedRoute>();
    const neighbours = new Map<string, string>();
    const fdb = new Map<string, string>();
    for (const peer of peers) {
      if (peer.node === plane.node || peer.subnet === plane.subnet) continue;
      const p = await choose(nl, plane, peer);
      if (p.mode === 'vxlan' && !vx) Object.assign(p, { mode: 'unreachable', problem: `the VXLAN link ${vxName} is missing` });
      programmed.push(p);
      if (p.mode === 'host-gw')
        routes.set(peer.subnet, { dst: peer.subnet, gw: peer.nodeIp, oif: underlay.index, onlink: false });
      if (p.mode === 'vxlan' && vx && peer.vtepMac) {
        const gw = nthAddress(peer.subnet, 0);
        routes.set(peer.subnet, { dst: peer.subnet, gw, oif: vx.index, onlink: true });
        neighbours.set(gw, peer.vtepMac);
        fdb.set(peer.vtepMac, peer.nodeIp);
      }
    }
    for (const r of await listOwnedRoutes(nl, nodeRouteProtocol)) {
      const want = routes.get(r.dst);
      if (want && want.gw === r.gw && want.oif === r.oif && want.onlink === r.onlink) routes.delete(r.dst);
      else if (!want) await deleteOwnedRoute(nl, r.dst, nodeRouteProtocol, r.table);
    }
    if (vx) {
      for (const n of await listNeighbours(nl, vx.index)) {
        if (n.ip.includes(':')) continue;
        const want = neighbours.get(n.ip);
        if (want && want === n.mac && n.state & nudPermanent) neighbours.delete(n.ip);
        else if (!want) await delNeighbour(nl, vx.index, n.ip);
      }
      for (const e of await listFdb(nl, vx.index)) {
        if (!e.dst) continue;
        const want = fdb.get(e.mac);
        if (want && want === e.dst) fdb.delete(e.mac);
        else if (!want || e.mac === '00:00:00:00:00:00') await delFdb(nl, vx.index, e.mac, e.dst);
      }
      // FDB and neighbour entries before the route: the first packet routed finds its way.
      for (const [mac, dst] of fdb) await setFdb(nl, vx.index, mac, dst);
      for (const [ip, mac] of neighbours) await setNeighbour(nl, vx.index, ip, mac);
    }
    for (const r of routes.values()) {
      await replaceOwnedRoute(nl, { dst: r.dst, gw: r.gw, dev: r.oif, onlink: r.onlink, protocol: nodeRouteProtocol });
    }
    log.debug({ peers: programmed.map((p) => `${p.record.node}:${p.mode}`) }, 'node: peers reconciled');
    return programmed;
  });
}

/** Removes everything the agent owns in the kernel: its routes and its VXLAN links (their FDB and neighbours go with them). */
export async function teardownPlane(): Promise<void> {
  await withNetlink(undefined, async (nl) => {
    for (const r of await listOwnedRoutes(nl, nodeRouteProtocol)) await deleteOwnedRoute(nl, r.dst, nodeRouteProtocol, r.table);
    for (const link of await nl.listLinks()) {
      if (link.kind === 'vxlan' && link.name.startsWith('ctnet.')) await nl.deleteLink(link.name);
    }
  });
}

export interface PeerKernelState {
  node: string;
  subnet: string;
  nodeIp: string;
  mode: ProgrammedPeer['mode'];
  problem?: string;
  route: boolean;
  /** VXLAN peers only. */
  fdb?: boolean;
  neighbour?: boolean;
}

/** For each peer, whether its route (and for VXLAN its FDB and neighbour entries) is in the kernel as it should be. */
export async function peerKernelState(
  peers: readonly ProgrammedPeer[],
  vni: number,
  underlay: string,
): Promise<PeerKernelState[]> {
  return withNetlink(undefined, async (nl) => {
    const routes = await listOwnedRoutes(nl, nodeRouteProtocol);
    const vx = await nl.getLink(vxlanLinkName(vni));
    const under = await nl.getLink(underlay);
    const fdb = vx ? await listFdb(nl, vx.index) : [];
    const neigh = vx ? await listNeighbours(nl, vx.index) : [];
    return peers.map((p) => {
      const r = p.record;
      const route = routes.find((x) => x.dst === r.subnet);
      const state: PeerKernelState = { node: r.node, subnet: r.subnet, nodeIp: r.nodeIp, mode: p.mode, route: false };
      if (p.problem) state.problem = p.problem;
      if (p.mode === 'host-gw') state.route = !!route && route.gw === r.nodeIp && route.oif === under?.index;
      if (p.mode === 'vxlan') {
        const gw = nthAddress(r.subnet, 0);
        state.route = !!route && route.gw === gw && route.oif === vx?.index && route.onlink;
        state.fdb = fdb.some((e) => e.mac === r.vtepMac && e.dst === r.nodeIp);
        state.neighbour = neigh.some((n) => n.ip === gw && n.mac === r.vtepMac && (n.state & nudPermanent) !== 0);
      }
      return state;
    });
  });
}
