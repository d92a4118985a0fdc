/**
 * A simulated cluster for `ctnet node`: every node a sandbox host namespace with its own CTNET_ROOT and CNI conf
 * dir. Nodes on segment A share one L2 underlay (a bridge in an "underlay" namespace, etcd on it too); nodes on
 * segment B sit behind a router namespace, which also leads to a "world" namespace (the internet). Nothing touches
 * the machine's own namespace.
 *
 *   world 203.0.113.100 ── router ──┬── segment A 172.31.1.0/24 (bridge in "underlay"): router .1, etcd .10, nodes .11…
 *                                   └── segment B 172.31.2.0/24: router .1, nodes .13…
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { type EtcdServer, startEtcd } from './etcd-helpers.js';
import { ctnet, type RunnerEnv, runnerEnv } from './runner-helpers.js';
import { createNetns, netnsPath, nsRun, repoRoot, tempDir } from './sandbox.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export const clusterCidr = '10.244.0.0/16';
export const worldIp = '203.0.113.100';
export const etcdIp = '172.31.1.10';

export interface SimNode {
  name: string;
  ns: string;
  ip: string;
  segment: 'A' | 'B';
  renv: RunnerEnv;
  cniDir: string;
  agent?: ChildProcess;
  /** The agent's stderr so far (for failure messages). */
  log: string[];
}

export interface Cluster {
  underlay: string;
  router: string;
  world: string;
  etcd: EtcdServer;
  nodes: SimNode[];
}

let vethCounter = 0;
async function wire(a: string, aName: string, b: string, bName: string): Promise<void> {
  const tmp = `ctt-v${process.pid % 1000}-${vethCounter++}`;
  await nsRun(a, 'ip', ['link', 'add', tmp, 'type', 'veth', 'peer', 'name', bName, 'netns', b]);
  await nsRun(a, 'ip', ['link', 'set', tmp, 'name', aName]);
  await nsRun(a, 'ip', ['link', 'set', aName, 'up']);
  await nsRun(b, 'ip', ['link', 'set', bName, 'up']);
}

async function addr(ns: string, cidr: string, dev: string): Promise<void> {
  await nsRun(ns, 'ip', ['addr', 'add', cidr, 'dev', dev]);
}

/** The underlay, router, world and etcd; nodes come with addNode. */
export async function createCluster(t: Teardown): Promise<Cluster> {
  const underlay = await createNetns(t, 'ul');
  const router = await createNetns(t, 'rt');
  const world = await createNetns(t, 'wd');
  const etcdNs = await createNetns(t, 'et');
  await nsRun(underlay, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  await nsRun(underlay, 'ip', ['link', 'set', 'br0', 'up']);
  await wire(underlay, 'p-rt', router, 'ethA');
  await nsRun(underlay, 'ip', ['link', 'set', 'p-rt', 'master', 'br0']);
  await addr(router, '172.31.1.1/24', 'ethA');
  await nsRun(router, 'ip', ['link', 'add', 'brB', 'type', 'bridge']);
  await nsRun(router, 'ip', ['link', 'set', 'brB', 'up']);
  await addr(router, '172.31.2.1/24', 'brB');
  await wire(router, 'ethW', world, 'eth0');
  await addr(router, '203.0.113.1/24', 'ethW');
  await addr(world, `${worldIp}/24`, 'eth0');
  await nsRun(world, 'ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
  await nsRun(router, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await wire(underlay, 'p-et', etcdNs, 'eth0');
  await nsRun(underlay, 'ip', ['link', 'set', 'p-et', 'master', 'br0']);
  await addr(etcdNs, `${etcdIp}/24`, 'eth0');
  await nsRun(etcdNs, 'ip', ['route', 'add', 'default', 'via', '172.31.1.1']);
  const etcd = await startEtcd(t, etcdNs, etcdIp);
  return { underlay, router, world, etcd, nodes: [] };
}

/** A node host namespace on segment A (the underlay bridge) or B (behind the router). */
export async function addNode(t: Teardown, cluster: Cluster, name: string, segment: 'A' | 'B', host: number): Promise<SimNode> {
  const ns = await createNetns(t, name);
  const ip = segment === 'A' ? `172.31.1.${host}` : `172.31.2.${host}`;
  if (segment === 'A') {
    await wire(cluster.underlay, `p-${name}`, ns, 'eth0');
    await nsRun(cluster.underlay, 'ip', ['link', 'set', `p-${name}`, 'master', 'br0']);
  } else {
    await wire(cluster.router, `p-${name}`, ns, 'eth0');
    await nsRun(cluster.router, 'ip', ['link', 'set', `p-${name}`, 'master', 'brB']);
  }
  await addr(ns, `${ip}/24`, 'eth0');
  await nsRun(ns, 'ip', ['route', 'add', 'default', 'via', segment === 'A' ? '172.31.1.1' : '172.31.2.1']);
  const renv = runnerEnv(t, ns);
  const node: SimNode = { name, ns, ip, segment, renv, cniDir: tempDir(t, 'cni'), log: [] };
  cluster.nodes.push(node);
  t.teardown(() => stopAgent(node));
  return node;
}

/** Starts the node's agent (`ctnet node up`) and resolves once it says it joined. */
export async function startAgent(
  cluster: Cluster,
  node: SimNode,
  extra: string[] = [],
  ttl = 5,
): Promise<{ subnet: string; joinedAt: number }> {
  const args = [
    `--net=${netnsPath(node.ns)}`,
    // The built CLI (npm run build): its start is a fraction of tsx's, which matters with short TTLs.
    join(repoRoot, 'bin', 'ctnet-node'),
    'node',
    'up',
    '--store',
    cluster.etcd.storeUrl,
    '--cluster-cidr',
    clusterCidr,
    '--node-ip',
    node.ip,
    '--node-name',
    node.name,
    '--lease-ttl',
    String(ttl),
    '--cni-conf-dir',
    node.cniDir,
    ...extra,
  ];
  const child = spawn('nsenter', args, { env: { ...node.renv.env, CTNET_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
  node.agent = child;
  child.stderr?.on('data', (d: Buffer) => {
    node.log.push(d.toString());
    if (node.log.length > 200) node.log.shift();
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`agent of ${node.name} did not join:\n${node.log.join('')}`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /joined with subnet (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ subnet: m[1] as string, joinedAt: Date.now() });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent of ${node.name} exited with ${code}:\n${node.log.join('')}`));
    });
  });
}

/** SIGKILL (a crash) or SIGTERM (a stop): by PID, the agent this test started. */
export async function stopAgent(node: SimNode, signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
  const child = node.agent;
  node.agent = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

export async function ownedRoutes(node: SimNode): Promise<string[]> {
  const r = await nsRun(node.ns, 'ip', ['route', 'show', 'proto', '67']);
  return r.stdout.split('\n').filter(Boolean).sort();
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function nodeCli(node: SimNode, args: string[], allowFailure = false) {
  return ctnet(node.renv, ['node', ...args], { allowFailure, bundle: true });
}
