/**
 * node/: `ctnet node`, one pod network across hosts. The subnet store (store.ts: the interface; etcd-store.ts: on
 * etcd 3), the backends that turn peers' records into kernel state (host-gw routes, a VXLAN overlay), and the
 * resident agent that keeps both in step.
 */

export { NodeAgent } from './agent.js';
export { type PeerKernelState, teardownPlane } from './dataplane.js';
export { defaultStorePrefix, EtcdStore, type EtcdStoreOptions, type EtcdTls, parseStoreUrl } from './etcd-store.js';
export { conflistFileName, defaultNodeNetwork, nodeBridgeName, nodeRouteProtocol, vtepMac, vxlanLinkName } from './names.js';
export {
  type DownReport,
  defaultCniConfDir,
  defaultLeaseTtl,
  type ListedNode,
  type NodeStatus,
  nodeDown,
  nodeList,
  nodeStatus,
  nodeUp,
  type UpOptions,
} from './ops.js';
export { type NodeState, type PeersFile, type ProgrammedPeer, readNodeState, readPeers } from './state.js';
export type {
  AcquireRequest,
  Backend,
  BackendChoice,
  ClusterConfig,
  NodeRecord,
  Snapshot,
  StoredRecord,
  StoreEvent,
  StoreWatch,
  SubnetLease,
  SubnetStore,
} from './store.js';
export { candidateSubnets, checkSubnetSize, nodeSubnets, parseCidr4 } from './subnets.js';
export { type ClusterView, clusterView, type PodTraceReport, tracePod } from './trace.js';
