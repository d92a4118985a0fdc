/**
 * The resident agent of `ctnet node up`, for the network namespace it runs in:
 *
 *   join:   cluster config (written by the first node) → a subnet lease (its own back after a restart) → the local
 *           data plane (VXLAN link, firewall rules) → the conflist in the CNI conf dir and as a ctnet network
 *   sync:   list every record at a revision → reconcile peers → watch from that revision; any watch failure →
 *           back off (0.2 s doubling to 5 s) → list again → reconcile → watch
 *   renew:  the lease every TTL/3 (failures retried every second); a lapsed lease is taken again, own subnet first
 *
 * When the store is away nothing in the kernel changes: routes stay as last programmed until a full list says
 * otherwise. SIGTERM/SIGINT stop the agent and leave the data plane in place (a restart picks it up); `node down`
 * is what removes it.
 */

import { join } from 'node:path';
import { CtnetError, ErrorCode, log } from '../core/index.js';
import { buildNodeConflist, networksDirFile, refreshIsolation, writeConflist } from './conflist.js';
import { type LocalPlane, podMtu, reconcilePeers, setupLocal } from './dataplane.js';
import { type NodeFirewallBackend, setupNodeFirewall } from './firewall.js';
import { conflistFileName, vtepMac } from './names.js';
import { type NodeState, type ProgrammedPeer, readNodeState, type StoreSettings, writeNodeState, writePeers } from './state.js';
import type { BackendChoice, ClusterConfig, NodeRecord, StoreWatch, SubnetLease, SubnetStore } from './store.js';
import { checkSubnetSize, parseCidr4 } from './subnets.js';

export interface AgentOptions {
  node: string;
  nodeIp: string;
  underlay: { name: string; mtu: number };
  clusterCidr: string;
  subnetSize: number;
  backend: BackendChoice;
  /** The firewall backend of the node's rules and its network's port forwards. */
  firewall: NodeFirewallBackend;
  vni: number;
  port: number;
  ttl: number;
  network: string;
  cniConfDir: string;
  /** ctnet's state root and its networks and lease dirs. */
  root: string;
  networksDir: string;
  leaseDir: string;
  store: StoreSettings;
}

const backoffStartMs = 200;
const backoffMaxMs = 5000;

export class NodeAgent {
  private lease: SubnetLease | undefined;
  private plane: LocalPlane | undefined;
  private config: ClusterConfig | undefined;
  private readonly peers = new Map<string, NodeRecord>();
  private watch: StoreWatch | undefined;
  private stopped = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private dirty = false;
  private revision = '0';
  private connected = false;
  private backoffMs = backoffStartMs;
  private readonly wake: Array<() => void> = [];
  /** How each peer was reached at the last reconcile (written again, with the store's state, while it is away). */
  private lastProgrammed: ProgrammedPeer[] = [];

  constructor(
    private readonly store: SubnetStore,
    private readonly opts: AgentOptions,
  ) {}

  get subnet(): string | undefined {
    return this.lease?.record.subnet;
  }

  /** Joins the cluster and programs the local node; resolves once the first full sync is done. */
  async start(): Promise<void> {
    const o = this.opts;
    const proposed: ClusterConfig = { clusterCidr: o.clusterCidr, subnetSize: o.subnetSize, vni: o.vni, port: o.port };
    checkSubnetSize(parseCidr4(o.clusterCidr, 'cluster CIDR'), o.subnetSize);
    const cfg = await this.store.ensureConfig(proposed);
    if (cfg.clusterCidr !== parseCidr4(o.clusterCidr, 'cluster CIDR').text || cfg.subnetSize !== o.subnetSize) {
      throw new CtnetError(
        ErrorCode.invalidConfig,
        `the cluster in ${this.store.where} uses ${cfg.clusterCidr} with /${cfg.subnetSize} node subnets, not ${o.clusterCidr} with /${o.subnetSize}`,
        { hint: `start this node with --cluster-cidr ${cfg.clusterCidr} --subnet-size ${cfg.subnetSize}` },
      );
    }
    this.config = cfg;
    const previous = readNodeState(o.root);
    const mac = vtepMac(o.node, cfg.vni);
    this.lease = await this.store.acquire(cfg, {
      node: o.node,
      nodeIp: o.nodeIp,
      backend: o.backend,
      ...(o.backend !== 'host-gw' && { vtepMac: mac }),
      ...(previous?.node === o.node && { preferred: previous.subnet }),
      ttl: o.ttl,
    });
    // Renewals start now: setting up the node below may take longer than a short TTL on a loaded host.
    this.scheduleRenew(Math.max(1000, (o.ttl * 1000) / 3));
    const plane: LocalPlane = {
      node: o.node,
      nodeIp: o.nodeIp,
      underlay: o.underlay.name,
      underlayMtu: o.underlay.mtu,
      subnet: this.lease.record.subnet,
      choice: o.backend,
      vni: cfg.vni,
      port: cfg.port,
      vtepMac: mac,
    };
    this.plane = plane;
    const vxlanLink = await setupLocal(plane);
    await setupNodeFirewall(o.firewall, cfg.clusterCidr, plane.subnet);
    const conflists = this.writeConflists(plane);
    await refreshIsolation(o.root);
    const state: NodeState = {
      node: o.node,
      nodeIp: o.nodeIp,
      underlay: o.underlay.name,
      store: o.store,
      config: cfg,
      backend: o.backend,
      firewall: o.firewall,
      subnet: plane.subnet,
      leaseId: this.lease.id,
      ttl: o.ttl,
      network: o.network,
      cniConfDir: o.cniConfDir,
      conflists,
      ...(vxlanLink && { vxlanLink }),
      pid: process.pid,
      started: new Date().toISOString(),
    };
    writeNodeState(o.root, state);
    log.info({ node: o.node, subnet: plane.subnet, backend: o.backend }, 'node: joined');
    await this.resync();
    void this.syncLoop();
  }

  private writeConflists(plane: LocalPlane): string[] {
    const o = this.opts;
    const conflist = buildNodeConflist({
      network: o.network,
      subnet: plane.subnet,
      clusterCidr: this.config?.clusterCidr ?? o.clusterCidr,
      mtu: podMtu(plane),
      leaseDir: o.leaseDir,
      portmapStateDir: join(o.root, 'portmap'),
      firewall: o.firewall,
    });
    const files = [join(o.cniConfDir, conflistFileName(o.network)), networksDirFile(o.networksDir, o.network)];
    for (const f of files) writeConflist(f, conflist);
    return files;
  }

  /** Lists every record, reconciles, and watches from the list's revision. Throws when the store cannot be read. */
  private async resync(): Promise<void> {
    this.watch?.close();
    this.watch = undefined;
    const snap = await this.store.list();
    this.peers.clear();
    for (const r of snap.records) this.peers.set(r.subnet, r);
    this.revision = snap.revision;
    this.connected = true;
    this.watch = this.store.watch(
      snap.revision,
      (e) => {
        if (e.type === 'put') this.peers.set(e.record.subnet, e.record);
        else this.peers.delete(e.subnet);
        this.revision = e.revision;
        this.requestReconcile();
      },
      (err) => {
        log.warn({ err: err.message }, 'node: store watch broken; the data plane stays as it is');
        this.connected = false;
        this.watch = undefined;
        this.wakeUp();
      },
    );
    await this.reconcileSerially();
  }

  /** Waits for a broken watch, then resyncs with backoff until the store answers again. */
  private async syncLoop(): Promise<void> {
    while (!this.stopped) {
      if (this.connected) {
        await new Promise<void>((r) => this.wake.push(r));
        continue;
      }
      await this.writePeerFile().catch(() => undefined);
      await new Promise((r) => setTimeout(r, this.backoffMs));
      if (this.stopped) return;
      try {
        await this.resync();
        log.info({ revision: this.revision }, 'node: store back; full resync done, watching');
        this.backoffMs = backoffStartMs;
      } catch (err) {
        this.connected = false;
        this.backoffMs = Math.min(backoffMaxMs, this.backoffMs * 2);
        log.debug({ err: (err as Error).message, retryInMs: this.backoffMs }, 'node: store still away');
      }
    }
  }

  private wakeUp(): void {
    for (const w of this.wake.splice(0)) w();
  }

  /** A reconcile after the running one (if any): one at a time, each from the peers as they are when it starts. */
  private requestReconcile(): void {
    if (this.dirty) return;
    this.dirty = true;
    void this.reconcileSerially().catch((err) => log.error({ err: (err as Error).message }, 'node: reconcile failed'));
  }

  private reconcileSerially(): Promise<void> {
    const next = this.syncing.then(() => {
      this.dirty = false;
      return this.reconcileNow();
    });
    this.syncing = next.catch(() => undefined);
    return next;
  }

  private async reconcileNow(): Promise<void> {
    if (!this.plane || this.stopped) return;
    const programmed = await reconcilePeers(this.plane, [...this.peers.values()]);
    for (const p of programmed) {
      if (p.problem) log.warn({ peer: p.record.node, problem: p.problem }, 'node: peer not routed');
    }
    await this.writePeerFile(programmed);
  }

  private async writePeerFile(programmed = this.lastProgrammed): Promise<void> {
    this.lastProgrammed = programmed;
    writePeers(this.opts.root, {
      updated: new Date().toISOString(),
      revision: this.revision,
      storeConnected: this.connected,
      peers: programmed,
    });
  }

  private scheduleRenew(ms: number): void {
    if (this.stopped) return;
    this.renewTimer = setTimeout(() => void this.renew(), ms);
  }

  private async renew(): Promise<void> {
    const lease = this.lease;
    const cfg = this.config;
    if (!lease || !cfg || this.stopped) return;
    const every = Math.max(1000, (this.opts.ttl * 1000) / 3);
    try {
      if (await this.store.renew(lease)) return this.scheduleRenew(every);
      // Lapsed (the store was unreachable from here for longer than the TTL): take the subnet again, own first.
      log.warn({ subnet: lease.record.subnet }, 'node: lease lapsed; taking it again');
      this.lease = await this.store.acquire(cfg, {
        node: lease.record.node,
        nodeIp: lease.record.nodeIp,
        backend: lease.record.backend,
        ...(lease.record.vtepMac && { vtepMac: lease.record.vtepMac }),
        preferred: lease.record.subnet,
        ttl: lease.ttl,
      });
      if (this.lease.record.subnet !== lease.record.subnet) {
        log.error(
          { was: lease.record.subnet, now: this.lease.record.subnet },
          'node: the subnet was taken by another node while this lease lapsed; pods must be restarted on the new one',
        );
        await this.rejoinOnSubnet();
      } else {
        const state = readNodeState(this.opts.root);
        if (state) writeNodeState(this.opts.root, { ...state, leaseId: this.lease.id });
      }
      this.scheduleRenew(every);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'node: lease renewal failed; retrying');
      this.scheduleRenew(1000);
    }
  }

  private async rejoinOnSubnet(): Promise<void> {
    if (!this.plane || !this.lease || !this.config) return;
    this.plane = { ...this.plane, subnet: this.lease.record.subnet };
    await setupLocal(this.plane);
    await setupNodeFirewall(this.opts.firewall, this.config.clusterCidr, this.plane.subnet);
    this.writeConflists(this.plane);
    const state = readNodeState(this.opts.root);
    if (state) writeNodeState(this.opts.root, { ...state, subnet: this.plane.subnet, leaseId: this.lease.id });
    this.requestReconcile();
  }

  /** Stops watching and renewing; the data plane and the lease stay (the lease expires unless a restart renews it). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.watch?.close();
    this.wakeUp();
    await this.syncing;
    await this.store.close();
  }
}
