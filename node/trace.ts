/**
 * `debug trace <container> <pod IP>` across nodes: the path from a local container to a pod on another node, hop
 * by hop, naming the first broken one. Read only.
 *
 *   target in the cluster → peer's subnet lease → container's route → forwarding → host route to the peer subnet →
 *   host-gw: peer on-link | VXLAN: link up → neighbour entry → FDB entry → underlay route to the peer
 *
 * The peers are the agent's last view (peers.json), checked against the store when it answers.
 */
import { CtnetError, ErrorCode } from '../core/index.js';
import { HopList, type TraceReport } from '../debug/index.js';
import { listFdb, listNeighbours, listOwnedRoutes, nudPermanent, readSysctl, withNetlink } from '../netns/index.js';
import { type CtnetPaths, netnsPathOf } from '../network/index.js';
import { resolveTarget } from '../runner/index.js';
import { nodeRouteProtocol, vxlanLinkName } from './names.js';
import { openStore } from './ops.js';
import { type ProgrammedPeer, readNodeState, readPeers } from './state.js';
import { ipInCidr, nthAddress, parseCidr4 } from './subnets.js';

export interface PodTraceReport extends Omit<TraceReport, 'port' | 'protocol'> {
  target: string;
  peer?: { node: string; subnet: string; nodeIp: string; mode: string };
}

const reconcileHint = 'restart the node agent (`ctnet node up …`): it reconciles everything it owns on start';

export async function tracePod(containerRef: string, target: string, paths: CtnetPaths): Promise<PodTraceReport> {
  const state = readNodeState(paths.root);
  if (!state) {
    throw new CtnetError(ErrorCode.invalidConfig, 'this host has not joined a cluster: no pod path to trace', {
      hint: 'trace a published port with `ctnet debug trace CONTAINER PORT`',
    });
  }
  const view = resolveTarget(containerRef, paths);
  const netns = netnsPathOf(view);
  const h = new HopList();
  const report: PodTraceReport = { container: view.name ?? view.id, target, from: view.name ?? view.id, hops: h.hops };
  const finish = () => {
    const i = h.hops.findIndex((x) => x.status === 'broken');
    if (i >= 0) report.firstBroken = i;
    return report;
  };
  const cluster = parseCidr4(state.config.clusterCidr, 'cluster CIDR');
  if (!ipInCidr(target, cluster)) {
    h.broken('target', `${target} is not in the cluster CIDR ${cluster.text}`, 'give a pod IP of another node');
    return finish();
  }
  h.ok('target', `${target} is in the cluster CIDR ${cluster.text}`);
  if (ipInCidr(target, parseCidr4(state.subnet, 'subnet'))) {
    h.broken('peer lease', `${target} is in this node's own subnet ${state.subnet}`, 'trace a pod of another node');
    return finish();
  }

  // The peer that holds the target's subnet: the store's word when it answers, the agent's last view otherwise.
  const programmed = readPeers(paths.root)?.peers ?? [];
  const peer: ProgrammedPeer | undefined = programmed.find((p) => ipInCidr(target, parseCidr4(p.record.subnet, 'subnet')));
  let storeNote = "the agent's last view (store not asked)";
  const store = openStore(state.store);
  try {
    const snap = await Promise.race([
      store.list({ withTtl: true }),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000).unref()),
    ]);
    if (snap) {
      const rec = snap.records.find((r) => ipInCidr(target, parseCidr4(r.subnet, 'subnet')));
      if (!rec) {
        h.broken(
          'peer lease',
          `no node holds a lease for ${target} in ${state.store.url}`,
          "is the pod's node up? `ctnet node ls`",
        );
        return finish();
      }
      storeNote = `lease alive, expires in ${rec.ttlLeft ?? '?'}s`;
      if (!peer || peer.record.subnet !== rec.subnet) {
        h.broken(
          'peer lease',
          `node "${rec.node}" holds ${rec.subnet}, but this node's agent has not programmed it`,
          'is the agent running? `ctnet node status`',
        );
        return finish();
      }
    } else storeNote = "store unreachable: the agent's last view";
  } catch {
    storeNote = "store unreachable: the agent's last view";
  } finally {
    void store.close().catch(() => undefined);
  }
  if (!peer) {
    h.broken('peer lease', `no known node holds a subnet with ${target}`, "is the pod's node up? `ctnet node ls`");
    return finish();
  }
  const rec = peer.record;
  report.peer = { node: rec.node, subnet: rec.subnet, nodeIp: rec.nodeIp, mode: peer.mode };
  h.ok('peer lease', `node "${rec.node}" (${rec.nodeIp}) holds ${rec.subnet}; ${storeNote}`);
  if (peer.mode === 'unreachable') {
    h.broken('backend', `the agent cannot route node "${rec.node}": ${peer.problem}`, 'see `ctnet node status`');
    return finish();
  }

  if (netns) {
    const r = await withNetlink(netns, (nl) => nl.routeGet(target)).catch(() => undefined);
    if (!r) h.broken('container route', `the container has no route to ${target}`, 'its default route via the bridge is missing');
    else h.ok('container route', `via ${r.gw ?? 'its link'} (${r.gw ? 'the bridge gateway' : 'on-link'})`);
    if (!r) return finish();
  } else h.ok('container route', 'container namespace unknown: skipped');

  if (readSysctl(undefined, 'net.ipv4.ip_forward') !== '1') {
    h.broken(
      'forwarding',
      'net.ipv4.ip_forward is 0 on this node',
      'sysctl -w net.ipv4.ip_forward=1 (the agent sets it on start)',
    );
    return finish();
  }
  h.ok('forwarding', 'net.ipv4.ip_forward=1');

  const vxName = vxlanLinkName(state.config.vni);
  await withNetlink(undefined, async (nl) => {
    const owned = (await listOwnedRoutes(nl, nodeRouteProtocol)).find((r) => r.dst === rec.subnet);
    const underlay = await nl.getLink(state.underlay);
    if (peer.mode === 'host-gw') {
      if (!owned || owned.gw !== rec.nodeIp || owned.oif !== underlay?.index) {
        return h.broken(
          'host route',
          owned
            ? `route to ${rec.subnet} goes via ${owned.gw ?? '?'}, not ${rec.nodeIp} on ${state.underlay}`
            : `no route to ${rec.subnet} via ${rec.nodeIp} (host-gw)`,
          reconcileHint,
        );
      }
      h.ok('host route', `${rec.subnet} via ${rec.nodeIp} dev ${state.underlay} (host-gw)`);
      const u = await nl.routeGet(rec.nodeIp);
      if (!u || u.gw)
        return h.broken(
          'underlay',
          `${rec.nodeIp} is not on-link any more`,
          'host-gw needs the peer on this L2 segment; use --backend auto or vxlan',
        );
      h.ok('underlay', `${rec.nodeIp} is on-link on ${state.underlay}`);
      return true;
    }
    const vx = await nl.getLink(vxName);
    const gw = nthAddress(rec.subnet, 0);
    if (!owned || owned.gw !== gw || owned.oif !== vx?.index || !owned.onlink) {
      return h.broken('host route', `no route to ${rec.subnet} via ${gw} dev ${vxName} onlink`, reconcileHint);
    }
    h.ok('host route', `${rec.subnet} via ${gw} dev ${vxName} onlink (VXLAN)`);
    if (!vx?.up) return h.broken('VXLAN link', `${vxName} is ${vx ? 'down' : 'missing'}`, reconcileHint);
    h.ok('VXLAN link', `${vxName} up, MTU ${vx.mtu}`);
    const neigh = (await listNeighbours(nl, vx.index)).find((n) => n.ip === gw);
    if (!neigh || neigh.mac !== rec.vtepMac || !(neigh.state & nudPermanent)) {
      return h.broken('neighbour', `no permanent neighbour entry ${gw} → ${rec.vtepMac} on ${vxName}`, reconcileHint);
    }
    h.ok('neighbour', `${gw} lladdr ${rec.vtepMac} permanent`);
    const fdb = (await listFdb(nl, vx.index)).find((e) => e.mac === rec.vtepMac);
    if (!fdb || fdb.dst !== rec.nodeIp) {
      return h.broken(
        'FDB',
        `no FDB entry ${rec.vtepMac} → ${rec.nodeIp} on ${vxName}${fdb ? ` (it points to ${fdb.dst})` : ''}`,
        reconcileHint,
      );
    }
    h.ok('FDB', `${rec.vtepMac} dst ${rec.nodeIp}`);
    const u = await nl.routeGet(rec.nodeIp);
    if (!u) return h.broken('underlay', `no route to node ${rec.nodeIp}`, 'the underlay cannot reach the peer: check its routes');
    h.ok('underlay', `${rec.nodeIp} ${u.gw ? `via ${u.gw}` : 'on-link'} (UDP ${state.config.port})`);
    return true;
  });
  return finish();
}

export interface ClusterView {
  node: string;
  subnet: string;
  clusterCidr: string;
  backend: string;
  vxlanLink?: string;
  peers: { node: string; subnet: string; nodeIp: string; mode: string; problem?: string }[];
}

/** The peers as the agent last programmed them (for `debug graph`); undefined when this host has not joined. */
export function clusterView(paths: CtnetPaths): ClusterView | undefined {
  const state = readNodeState(paths.root);
  if (!state) return undefined;
  const peers = readPeers(paths.root)?.peers ?? [];
  return {
    node: state.node,
    subnet: state.subnet,
    clusterCidr: state.config.clusterCidr,
    backend: state.backend,
    ...(state.vxlanLink && { vxlanLink: state.vxlanLink }),
    peers: peers.map((p) => ({
      node: p.record.node,
      subnet: p.record.subnet,
      nodeIp: p.record.nodeIp,
      mode: p.mode,
      ...(p.problem && { problem: p.problem }),
    })),
  };
}
