/**
 * What the `ctnet node` commands do, without formatting: up (run the agent until a signal), down (leave the
 * cluster and remove everything the node owns), list (the cluster from the store), status (this node's view).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { CtnetError, ErrorCode, log } from '../core/index.js';
import { withNetlink } from '../netns/index.js';
import { ctnetPaths, NetworkStore } from '../network/index.js';
import { runnerContainers } from '../runner/index.js';
import { NodeAgent } from './agent.js';
import { refreshIsolation, removeConflists } from './conflist.js';
import { detectNodeIp, findUnderlay, type PeerKernelState, peerKernelState, teardownPlane } from './dataplane.js';
import { defaultStorePrefix, EtcdStore } from './etcd-store.js';
import { listNodeFirewall, pickNodeFirewall, teardownNodeFirewall } from './firewall.js';
import { defaultNodeNetwork, nodeBridgeName } from './names.js';
import { type NodeState, readNodeState, readPeers, removeNodeState, type StoreSettings } from './state.js';
import type { BackendChoice, StoredRecord, SubnetStore } from './store.js';

export const defaultCniConfDir = '/etc/cni/net.d';
export const defaultLeaseTtl = 60;
export const defaultVni = 1;

export interface UpOptions {
  store: string;
  storePrefix?: string;
  tls?: StoreSettings['tls'];
  clusterCidr: string;
  subnetSize?: number;
  nodeIp?: string;
  nodeName?: string;
  backend?: BackendChoice;
  /** iptables, nftables, or auto (what new ctnet networks get). */
  firewall?: string;
  vni?: number;
  port?: number;
  leaseTtl?: number;
  network?: string;
  cniConfDir?: string;
}

export function openStore(settings: StoreSettings): SubnetStore {
  return new EtcdStore({ url: settings.url, prefix: settings.prefix, ...(settings.tls && { tls: settings.tls }) });
}

function parseBackend(value: string | undefined): BackendChoice {
  const b = value ?? 'auto';
  if (b !== 'host-gw' && b !== 'vxlan' && b !== 'auto') {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid --backend ${b}: expected host-gw, vxlan or auto`);
  }
  return b;
}

/** Runs the agent until SIGTERM/SIGINT; `ready` is called once the node has joined and synced. */
export async function nodeUp(opts: UpOptions, ready: (info: { node: string; subnet: string }) => void): Promise<void> {
  const paths = ctnetPaths();
  const nodeIp = opts.nodeIp ?? (await detectNodeIp());
  if (!nodeIp) throw new CtnetError(ErrorCode.invalidConfig, "cannot tell this node's address", { hint: 'pass --node-ip' });
  const underlay = await findUnderlay(nodeIp);
  const settings: StoreSettings = {
    url: opts.store,
    prefix: opts.storePrefix ?? defaultStorePrefix,
    ...(opts.tls && { tls: opts.tls }),
  };
  const ttl = opts.leaseTtl ?? defaultLeaseTtl;
  if (!Number.isInteger(ttl) || ttl < 2)
    throw new CtnetError(ErrorCode.invalidConfig, `invalid --lease-ttl ${ttl}: at least 2 seconds`);
  const firewall = await pickNodeFirewall(opts.firewall);
  const store = openStore(settings);
  const agent = new NodeAgent(store, {
    node: opts.nodeName ?? hostname(),
    nodeIp,
    underlay,
    clusterCidr: opts.clusterCidr,
    subnetSize: opts.subnetSize ?? 24,
    backend: parseBackend(opts.backend),
    firewall,
    vni: opts.vni ?? defaultVni,
    port: opts.port ?? 8472,
    ttl,
    network: opts.network ?? defaultNodeNetwork,
    cniConfDir: opts.cniConfDir ?? defaultCniConfDir,
    root: paths.root,
    networksDir: paths.networks,
    leaseDir: paths.leases,
    store: settings,
  });
  const stopped = new Promise<void>((resolve) => {
    const stop = () => void agent.stop().then(resolve, resolve);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  try {
    await agent.start();
  } catch (err) {
    await agent.stop().catch(() => undefined);
    throw err;
  }
  ready({ node: opts.nodeName ?? hostname(), subnet: agent.subnet as string });
  await stopped;
}

function requireState(root: string): NodeState {
  const state = readNodeState(root);
  if (!state) {
    throw new CtnetError(ErrorCode.invalidConfig, 'this host has not joined a cluster', {
      hint: 'start the agent with `ctnet node up --store etcd://HOST:2379 --cluster-cidr CIDR`',
    });
  }
  return state;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopAgent(pid: number): Promise<void> {
  if (pid === process.pid || !alive(pid)) return;
  // Only our agent: its command line names `node up`.
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return;
  }
  if (!/\bnode\b.*\bup\b/.test(cmdline)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
}

export interface DownReport {
  node: string;
  subnet: string;
  released: boolean;
  storeError?: string;
}

/** Stops the agent, gives the subnet back, removes the node's routes, VXLAN link, rules, conflists and bridge. */
export async function nodeDown(opts: { force?: boolean } = {}): Promise<DownReport> {
  const paths = ctnetPaths();
  const state = requireState(paths.root);
  const networks = new NetworkStore(paths, []);
  const net = networks.managed().find((n) => n.list.name === state.network);
  const attached = net ? networks.attachments(net, runnerContainers(paths)) : [];
  if (attached.length && !opts.force) {
    throw new CtnetError(
      ErrorCode.exists,
      `failed to take node "${state.node}" down: ${attached.length} container(s) are attached to network "${state.network}"`,
      { hint: 'remove them first, or pass --force (their traffic to other nodes stops)' },
    );
  }
  await stopAgent(state.pid);
  const report: DownReport = { node: state.node, subnet: state.subnet, released: false };
  const store = openStore(state.store);
  try {
    await store.release({
      record: { node: state.node, nodeIp: state.nodeIp, subnet: state.subnet, backend: state.backend, since: '' },
      id: state.leaseId,
      ttl: state.ttl,
    });
    report.released = true;
  } catch (err) {
    report.storeError = (err as Error).message;
    log.warn({ err: report.storeError }, 'node down: could not release the lease; it expires with its TTL');
  } finally {
    await store.close().catch(() => undefined);
  }
  await teardownPlane();
  await teardownNodeFirewall();
  removeConflists(state.conflists);
  await refreshIsolation(paths.root);
  await withNetlink(undefined, (nl) => nl.deleteLink(nodeBridgeName));
  removeNodeState(paths.root);
  return report;
}

export interface ListedNode extends StoredRecord {
  ageSeconds: number;
  self: boolean;
}

/** Every node of the cluster as the store has it. */
export async function nodeList(opts: {
  store?: string;
  storePrefix?: string;
  tls?: StoreSettings['tls'];
}): Promise<ListedNode[]> {
  const state = readNodeState(ctnetPaths().root);
  const settings: StoreSettings | undefined = opts.store
    ? { url: opts.store, prefix: opts.storePrefix ?? defaultStorePrefix, ...(opts.tls && { tls: opts.tls }) }
    : state?.store;
  if (!settings) {
    throw new CtnetError(ErrorCode.invalidConfig, 'no store given and this host has not joined a cluster', {
      hint: 'pass --store etcd://HOST:2379',
    });
  }
  const store = openStore(settings);
  try {
    const snap = await store.list({ withTtl: true });
    const now = Date.now();
    return snap.records
      .map((r) => ({
        ...r,
        ageSeconds: Math.max(0, Math.round((now - Date.parse(r.since)) / 1000)),
        self: r.node === state?.node,
      }))
      .sort((a, b) => a.subnet.localeCompare(b.subnet, undefined, { numeric: true }));
  } finally {
    await store.close();
  }
}

export interface NodeStatus {
  node: string;
  nodeIp: string;
  subnet: string;
  backend: BackendChoice;
  firewall: 'iptables' | 'nftables';
  clusterCidr: string;
  network: string;
  agentRunning: boolean;
  storeConnected: boolean;
  peersUpdated?: string;
  vxlanLink?: string;
  firewallRules: number;
  peers: PeerKernelState[];
}

/** This node's view: its lease, and per peer whether the kernel holds what the agent last programmed. */
export async function nodeStatus(): Promise<NodeStatus> {
  const paths = ctnetPaths();
  const state = requireState(paths.root);
  const peers = readPeers(paths.root);
  const agentRunning = alive(state.pid);
  return {
    node: state.node,
    nodeIp: state.nodeIp,
    subnet: state.subnet,
    backend: state.backend,
    firewall: state.firewall ?? 'iptables',
    clusterCidr: state.config.clusterCidr,
    network: state.network,
    agentRunning,
    storeConnected: agentRunning && (peers?.storeConnected ?? false),
    ...(peers && { peersUpdated: peers.updated }),
    ...(state.vxlanLink && { vxlanLink: state.vxlanLink }),
    firewallRules: (await listNodeFirewall(state.firewall ?? 'iptables')).length,
    peers: await peerKernelState(peers?.peers ?? [], state.config.vni, state.underlay),
  };
}
