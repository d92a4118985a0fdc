/**
 * A cluster node's rules (`ctnet node`), one set per host, owned by the node agent and replaced whole:
 *
 *   - pod traffic from the node's subnet that leaves the cluster CIDR is masqueraded to the node's address
 *     (pod ↔ pod anywhere in the cluster is never NATed; multicast is left alone);
 *   - traffic from or to the cluster CIDR may be forwarded (for hosts whose forward policy drops).
 *
 * Each backend renders them in its own objects (names in its module, part of the on-host contract); this module
 * only checks the spec, so no caller string reaches rule text.
 */
import { CtnetError, ErrorCode, wrapError } from '../core/index.js';
import { parseCidr } from './cidr.js';

export interface NodeRulesSpec {
  /** The pod network of the whole cluster (IPv4 CIDR). */
  clusterCidr: string;
  /** This node's pod subnet, inside the cluster CIDR. */
  subnet: string;
}

/** The spec with both networks in canonical subnet form; a CtnetError (code 7) for anything else. */
export function canonicalNodeRules(spec: NodeRulesSpec): NodeRulesSpec {
  const cluster = parseCidr(spec.clusterCidr);
  const subnet = parseCidr(spec.subnet);
  if (cluster.family !== 4 || subnet.family !== 4) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid node rules: ${spec.clusterCidr} and ${spec.subnet} must be IPv4`);
  }
  return { clusterCidr: cluster.subnet, subnet: subnet.subnet };
}

/** Runs a backend's change of the node rules; its failure reads "failed to <what> the node's rules: …". */
export async function changeNodeRules(what: 'set up' | 'tear down', change: () => Promise<void>): Promise<void> {
  try {
    await change();
  } catch (err) {
    throw wrapError(`${what} the node's rules`, err);
  }
}
