/**
 * node/: `ctnet node`, one pod network across hosts. The subnet store (store.ts: the interface; etcd-store.ts: on
 * etcd 3), the backends that turn peers' records into kernel state (host-gw routes, a VXLAN overlay), and the
 * resident agent that keeps both in step.
 */
export { defaultStorePrefix, EtcdStore, type EtcdStoreOptions, type EtcdTls, parseStoreUrl } from './etcd-store.js';
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
