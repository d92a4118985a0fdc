/**
 * The agent's own files under $CTNET_ROOT/node: what it was started with and holds (node.json), and the peers it
 * last programmed (peers.json). `node status`, `node down`, `debug trace` and a restarted agent read them; none of
 * them needs the store to find what the agent owns.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, BackendChoice, ClusterConfig, NodeRecord } from './store.js';

export interface StoreSettings {
  url: string;
  prefix: string;
  tls?: { ca: string; cert?: string; key?: string };
}

export interface NodeState {
  node: string;
  nodeIp: string;
  underlay: string;
  store: StoreSettings;
  config: ClusterConfig;
  backend: BackendChoice;
  /** The firewall backend of the node's rules and of its network's port forwards (absent in older files: iptables). */
  firewall?: 'iptables' | 'nftables';
  subnet: string;
  leaseId: string;
  ttl: number;
  network: string;
  cniConfDir: string;
  /** The files the agent wrote its conflist to. */
  conflists: string[];
  vxlanLink?: string;
  pid: number;
  started: string;
}

export interface ProgrammedPeer {
  record: NodeRecord;
  mode: Backend | 'unreachable';
  /** Why the peer cannot be routed (mode 'unreachable'). */
  problem?: string;
}

export interface PeersFile {
  updated: string;
  revision: string;
  /** Whether the agent is connected to the store right now. */
  storeConnected: boolean;
  peers: ProgrammedPeer[];
}

export function nodeStateDir(root: string): string {
  return join(root, 'node');
}

function writeAtomic(file: string, value: unknown): void {
  mkdirSync(join(file, '..'), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export const readNodeState = (root: string) => readJson<NodeState>(join(nodeStateDir(root), 'node.json'));
export const writeNodeState = (root: string, s: NodeState) => writeAtomic(join(nodeStateDir(root), 'node.json'), s);
export const readPeers = (root: string) => readJson<PeersFile>(join(nodeStateDir(root), 'peers.json'));
export const writePeers = (root: string, p: PeersFile) => writeAtomic(join(nodeStateDir(root), 'peers.json'), p);
export function removeNodeState(root: string): void {
  rmSync(nodeStateDir(root), { recursive: true, force: true });
}
