/**
 * `ctnet node` figures on a simulated cluster (the integration test's: sandbox namespaces, two segments, a real
 * etcd; see test-net/cluster-helpers.ts), all in one run:
 *
 * - convergence: from a node's join (its agent says "joined") to every other node having its route, and from
 *   the agent's start; over --rounds joins (the node leaves with `node down` between rounds);
 * - throughput: pod-to-pod TCP (iperf3, --seconds each, --repeat times, median) across two nodes on one segment
 *   with host-gw and with VXLAN, against the underlay itself (node to node on the same segment), same run.
 *   Targets: host-gw ≥ 95 %, VXLAN ≥ 80 % of the underlay.
 *
 * flannel, the comparison the issue names, is not a Debian package and is not installed here: it is not measured.
 * Namespaces are named ctt-… (the test helpers') and removed at the end, also on Ctrl-C.
 * Usage: node --import tsx bench/multi-node.ts [--rounds 5] [--seconds 5] [--repeat 3]   (after npm run build)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  addNode,
  type Cluster,
  createCluster,
  nodeCli,
  ownedRoutes,
  type SimNode,
  startAgent,
  stopAgent,
} from '../test-net/cluster-helpers.js';
import { busyboxRootfs, ctnet, ensureInitHelper, inspect } from '../test-net/runner-helpers.js';
import { nsRun } from '../test-net/sandbox.js';
import { median, opt } from './common.js';

const rounds = Number(opt('rounds', '5'));
const seconds = Number(opt('seconds', '5'));
const repeat = Number(opt('repeat', '3'));

const teardowns: (() => void | Promise<void>)[] = [];
const t = { teardown: (fn: () => void | Promise<void>) => void teardowns.push(fn) };
async function cleanup(): Promise<void> {
  for (const fn of teardowns.splice(0).reverse()) await Promise.resolve(fn()).catch(() => undefined);
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

const hasRoute = async (n: SimNode, subnet: string) => (await ownedRoutes(n)).some((r) => r.startsWith(`${subnet} `));

async function convergence(
  cluster: Cluster,
  peers: SimNode[],
  joiner: SimNode,
  prefix: string[],
): Promise<{ join: number[]; start: number[] }> {
  const join: number[] = [];
  const start: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = Date.now();
    const j = await startAgent(cluster, joiner, prefix, 10);
    const pending = new Set(peers);
    while (pending.size) {
      for (const p of [...pending]) if (await hasRoute(p, j.subnet)) pending.delete(p);
    }
    const done = Date.now();
    join.push(done - j.joinedAt);
    start.push(done - started);
    await nodeCli(joiner, ['down']);
    await stopAgent(joiner);
    for (const p of peers) while (await hasRoute(p, j.subnet)) await new Promise((r) => setTimeout(r, 20));
  }
  return { join, start };
}

function iperfServer(netns: string): ChildProcess {
  const child = spawn('nsenter', [`--net=${netns}`, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return child;
}

async function iperf(fromNetns: string, to: string): Promise<number> {
  const r = await nsRun(fromNetns, 'iperf3', ['-c', to, '-p', '5201', '-t', String(seconds), '-J']);
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

async function main(): Promise<void> {
  ensureInitHelper();
  const cluster = await createCluster(t);
  const image = await busyboxRootfs(t);
  // Two clusters on one etcd and one segment: host-gw nodes under one key prefix, VXLAN nodes under another.
  const hg = ['--backend', 'host-gw', '--store-prefix', '/bench/hg'];
  const vx = ['--backend', 'vxlan', '--store-prefix', '/bench/vx'];
  const [a1, a2, a3, b1, b2] = [
    await addNode(t, cluster, 'a1', 'A', 21),
    await addNode(t, cluster, 'a2', 'A', 22),
    await addNode(t, cluster, 'a3', 'A', 23),
    await addNode(t, cluster, 'b1', 'A', 31),
    await addNode(t, cluster, 'b2', 'A', 32),
  ] as SimNode[];
  for (const n of [a1, a2]) await startAgent(cluster, n as SimNode, hg, 10);
  for (const n of [b1, b2]) await startAgent(cluster, n as SimNode, vx, 10);

  const hgConv = await convergence(cluster, [a1, a2] as SimNode[], a3 as SimNode, hg);
  console.log(`convergence, host-gw, join → 2 peers routed: median ${median(hgConv.join)} ms (${hgConv.join.join(', ')})`);
  console.log(
    `convergence, host-gw, agent start → 2 peers routed: median ${median(hgConv.start)} ms (${hgConv.start.join(', ')})`,
  );

  const pods: Record<string, { ip: string; netns: string }> = {};
  for (const [n, name] of [
    [a1, 'p1'],
    [a2, 'p2'],
    [b1, 'q1'],
    [b2, 'q2'],
  ] as [SimNode, string][]) {
    await ctnet(n.renv, ['run', '-d', '--name', name, '--network', 'cluster', image, 'sleep', '3600'], { bundle: true });
    const v = await inspect(n.renv, name);
    pods[name] = { ip: v.NetworkSettings.IPAddress, netns: v.NetworkSettings.SandboxKey };
  }
  iperfServer(`/run/netns/${(a2 as SimNode).ns}`);
  iperfServer(pods.p2?.netns as string);
  iperfServer(pods.q2?.netns as string);
  await new Promise((r) => setTimeout(r, 500));
  const runs = { underlay: [] as number[], hostgw: [] as number[], vxlan: [] as number[] };
  for (let i = 0; i < repeat; i++) {
    runs.underlay.push(await iperf(`/run/netns/${(a1 as SimNode).ns}`, (a2 as SimNode).ip));
    runs.hostgw.push(await iperf(pods.p1?.netns as string, pods.p2?.ip as string));
    runs.vxlan.push(await iperf(pods.q1?.netns as string, pods.q2?.ip as string));
  }
  const u = median(runs.underlay);
  const h = median(runs.hostgw);
  const v = median(runs.vxlan);
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(', ');
  console.log(`throughput, underlay node → node: median ${u.toFixed(2)} Gbit/s (${fmt(runs.underlay)})`);
  console.log(
    `throughput, pod → pod host-gw:     median ${h.toFixed(2)} Gbit/s (${fmt(runs.hostgw)}) = ${((h / u) * 100).toFixed(0)} % of the underlay (target ≥ 95 %)`,
  );
  console.log(
    `throughput, pod → pod VXLAN:       median ${v.toFixed(2)} Gbit/s (${fmt(runs.vxlan)}) = ${((v / u) * 100).toFixed(0)} % of the underlay (target ≥ 80 %)`,
  );
  console.log('flannel: not a Debian package, not installed here: not measured');
  for (const [n, name] of [
    [a1, 'p1'],
    [a2, 'p2'],
    [b1, 'q1'],
    [b2, 'q2'],
  ] as [SimNode, string][])
    await ctnet(n.renv, ['rm', '-f', name], { bundle: true });
}

try {
  await main();
} finally {
  await cleanup();
}
