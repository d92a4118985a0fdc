/**
 * Names the kernel and the host can see, part of the on-host contract: `ctnet node status`, `debug trace`, a
 * restarted agent and `node down` find what the agent owns by them.
 */
import { createHash } from 'node:crypto';

/** rtm_protocol of every route the agent programs (`ip route show proto 67`): it owns exactly these. */
export const nodeRouteProtocol = 67;
/** The VXLAN link: `ctnet.<VNI>`. */
export function vxlanLinkName(vni: number): string {
  return `ctnet.${vni}`;
}
/** The node network's bridge (what the conflist's bridge plugin creates). */
export const nodeBridgeName = 'ctnode0';
/** Default name of the node network (the ctnet network and the conflist's "name"). */
export const defaultNodeNetwork = 'cluster';
/** The conflist file in the CNI conf dir (kubelet and containerd take the first file in name order). */
export function conflistFileName(network: string): string {
  return `10-ctnet-${network}.conflist`;
}

/** A stable, locally administered MAC for a node's VXLAN link: peers' neighbour entries survive a re-creation. */
export function vtepMac(node: string, vni: number): string {
  const h = createHash('sha256').update(`ctnet-vtep:${node}:${vni}`).digest();
  const first = ((h[0] as number) & 0xfe) | 0x02; // unicast, locally administered
  const bytes = [first, h[1], h[2], h[3], h[4], h[5]] as number[];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
