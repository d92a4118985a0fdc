/**
 * The subnet store: where nodes lease their subnets of the cluster CIDR and learn of each other. One implementation
 * (etcd-store.ts, on etcd 3); a Kubernetes-API one (Node spec.podCIDR) could come behind the same interface.
 */

export type Backend = 'host-gw' | 'vxlan';
export type BackendChoice = Backend | 'auto';

/** The cluster-wide settings every node must agree on; the first node to join writes them. */
export interface ClusterConfig {
  clusterCidr: string;
  subnetSize: number;
  /** VXLAN network identifier and UDP port of the overlay. */
  vni: number;
  port: number;
}

/** What a node publishes about itself with its subnet. */
export interface NodeRecord {
  node: string;
  /** The node's underlay address: host-gw routes go via it, VXLAN packets to it. */
  nodeIp: string;
  subnet: string;
  /** The backend the node was started with ('auto' nodes take both). */
  backend: BackendChoice;
  /** The node's VXLAN endpoint, when it has one (backends vxlan and auto). */
  vtepMac?: string;
  /** When the node first took this subnet (kept over renewals and restarts). */
  since: string;
}

/** A record as read from the store. */
export interface StoredRecord extends NodeRecord {
  /** Seconds left before the record expires, as the store last said (undefined: not asked). */
  ttlLeft?: number;
  /** The lease's TTL in seconds (0: not asked). */
  ttl: number;
}

export interface SubnetLease {
  record: NodeRecord;
  /** The store's handle on the lease (etcd: the lease ID). */
  id: string;
  ttl: number;
}

export interface Snapshot {
  records: StoredRecord[];
  /** The store revision the snapshot was read at; a watch from revision + 1 misses nothing. */
  revision: string;
}

export type StoreEvent =
  | { type: 'put'; record: StoredRecord; revision: string }
  | { type: 'delete'; subnet: string; revision: string };

export interface StoreWatch {
  close(): void;
}

export interface AcquireRequest {
  node: string;
  nodeIp: string;
  backend: BackendChoice;
  vtepMac?: string;
  /** The subnet this node held before (from its own state): asked for first when free. */
  preferred?: string;
  ttl: number;
}

export interface SubnetStore {
  /** Describes where the store is, for messages ("etcd at http://…"). */
  readonly where: string;
  /** The cluster's config: `proposed` is written when there is none yet; otherwise the stored one is returned. */
  ensureConfig(proposed: ClusterConfig): Promise<ClusterConfig>;
  readConfig(): Promise<ClusterConfig | undefined>;
  /**
   * Leases a subnet for `req.node`: its own record back when it is alive (a restart), else `preferred` when free,
   * else a free one. Two nodes never get the same subnet, however they race.
   */
  acquire(cfg: ClusterConfig, req: AcquireRequest): Promise<SubnetLease>;
  /** Keeps the lease alive for another TTL; false when the store says it has expired (the record is gone). */
  renew(lease: SubnetLease): Promise<boolean>;
  /** Gives the subnet back now (its record disappears for every node). */
  release(lease: SubnetLease): Promise<void>;
  /** Every node's record and the revision they were read at (withTtl: ask the store for each lease's time left). */
  list(opts?: { withTtl?: boolean }): Promise<Snapshot>;
  /** Changes after `afterRevision`, in order; `onBroken` once when the watch cannot go on (store away, compaction). */
  watch(afterRevision: string, onEvent: (e: StoreEvent) => void, onBroken: (err: Error) => void): StoreWatch;
  close(): Promise<void>;
}
