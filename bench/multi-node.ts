/**
 * `ctnet node` figures on a simulated cluster (the integration test's: sandbox namespaces, two segments, a real
 * etcd; see test-net/cluster-helpers.ts), all in one run:
 *
 * - convergence: from a node's join (its agent says "joined") to every other node having its route, and from
 *   the agent's start; over --rounds joins (the node leaves with `node down` between rounds);
 * - throughput: pod-to-pod TCP (iperf3, --seconds each) across two nodes on one segment with host-gw and with
 *   VXLAN, against the underlay itself (node to node on the same segment), same run. Targets: host-gw ≥ 95 %,
 *   VXLAN ≥ 80 % of the underlay. Two regimes, alternated each round: no line rate (veth as fast as the CPU
 *   copies) and a NIC's line rate on each node's uplink (--line-rate, tbf; none to skip). Within a regime the
 *   three paths are measured in turns, --repeat rounds, each round in another order (so a load change hits all
 *   three alike); the ratio printed is the median of the rounds' own ratios (each against the underlay of its
 *   round), beside the ratio of the medians. Beside throughput, each path's CPU per GB (the iperf3 pair's CPU
 *   seconds per GB moved), which the machine's load moves far less than throughput: the underlay's over a pod
 *   path's is what a pod gets per CPU, the CPU-bound ratio to expect on a quiet machine. The load average is
 *   printed before and after: on a shared machine the throughput figures move with it.
 *
 * flannel, the comparison the issue names, is not a Debian package and is not installed here: it is not measured.
 * Namespaces are named ctt-… (the test helpers') and removed at the end, also on Ctrl-C.
 * Usage: npm run bench:multi-node -- [--rounds 5] [--seconds 3] [--repeat 9] [--line-rate 2gbit|none]
 * (builds first; --rounds 0: no convergence rounds). Built already: node --import tsx bench/multi-node.ts [options].
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { loadavg } from 'node:os';
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
const seconds = Number(opt('seconds', '3'));
const repeat = Number(opt('repeat', '9'));
/** tbf rate of each node's uplink in the second regime (tc syntax), or none. */
const lineRate = opt('line-rate', '2gbit');
const load = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');

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

interface Sample {
  gbps: number;
  /** CPU seconds of the sending and the receiving iperf3 per GB moved (see cpuNote). */
  cpuPerGB: number;
}

async function iperf(fromNetns: string, to: string): Promise<Sample> {
  const r = await nsRun(fromNetns, 'iperf3', ['-c', to, '-p', '5201', '-t', String(seconds), '-J']);
  const j = JSON.parse(r.stdout) as {
    end: {
      sum_received: { bits_per_second: number; bytes: number };
      cpu_utilization_percent: { host_total: number; remote_total: number };
    };
  };
  const cpu = j.end.cpu_utilization_percent;
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    cpuPerGB: (((cpu.host_total + cpu.remote_total) / 100) * seconds) / (j.end.sum_received.bytes / 1e9),
  };
}

/**
 * Why CPU per GB: it is what a path costs, and unlike throughput it hardly moves with the machine's load (a busy
 * machine gives a flow less CPU time, not a different cost per byte). The kernel charges the softirq work done
 * in a process's context to that process (tick accounting), and with veth the whole path from the sending
 * socket to the receiving one runs in the sender's softirqs; work deferred to ksoftirqd is not counted.
 */
const cpuNote =
  "CPU per GB: the iperf3 pair's CPU seconds per GB moved; the underlay's over a pod path's is the throughput a pod gets per CPU, relative to the underlay";

/** A NIC's line rate on each node's uplink (egress of eth0), or none. */
async function setLineRate(nodes: SimNode[], rate: string | undefined): Promise<void> {
  for (const n of nodes) {
    if (rate)
      await nsRun(n.ns, 'tc', [
        'qdisc',
        'replace',
        'dev',
        'eth0',
        'root',
        'tbf',
        'rate',
        rate,
        'burst',
        '1mb',
        'latency',
        '20ms',
      ]);
    else await nsRun(n.ns, 'tc', ['qdisc', 'del', 'dev', 'eth0', 'root'], { allowFailure: true });
  }
}

async function main(): Promise<void> {
  console.log(`load average at start: ${load()} (${repeat} rounds of ${seconds} s per path)`);
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

  if (rounds > 0) {
    const hgConv = await convergence(cluster, [a1, a2] as SimNode[], a3 as SimNode, hg);
    console.log(`convergence, host-gw, join → 2 peers routed: median ${median(hgConv.join)} ms (${hgConv.join.join(', ')})`);
    console.log(
      `convergence, host-gw, agent start → 2 peers routed: median ${median(hgConv.start)} ms (${hgConv.start.join(', ')})`,
    );
  }

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
  const paths = {
    underlay: () => iperf(`/run/netns/${(a1 as SimNode).ns}`, (a2 as SimNode).ip),
    hostgw: () => iperf(pods.p1?.netns as string, pods.p2?.ip as string),
    vxlan: () => iperf(pods.q1?.netns as string, pods.q2?.ip as string),
  };
  type Path = keyof typeof paths;
  const order: Path[] = ['underlay', 'hostgw', 'vxlan'];
  // Two regimes, alternated in every round. Without a line rate the "underlay" is a veth pair and a bridge,
  // as fast as the CPU copies: the ratio is then what the pod path's extra hops (two veth pairs, a bridge and
  // a forwarding decision per node, the encapsulation) cost in CPU. With a line rate on each node's uplink
  // (tbf on eth0, as a NIC's), the underlay is the limit, as on real hosts: the ratio says whether pod
  // traffic fills the link (VXLAN pays its 50 bytes a packet within the rate). CPU per GB, in both, is the
  // cost of a path that the load moves least.
  const regimes: { name: string; rate?: string }[] = [
    { name: 'no line rate (CPU-bound)' },
    ...(lineRate === 'none' ? [] : [{ name: `line rate ${lineRate} on each node's uplink`, rate: lineRate }]),
  ];
  const runs = regimes.map(() => ({ underlay: [] as Sample[], hostgw: [] as Sample[], vxlan: [] as Sample[] }));
  for (let i = 0; i < repeat; i++) {
    for (const [r, regime] of regimes.entries()) {
      await setLineRate([a1, a2, b1, b2] as SimNode[], regime.rate);
      // Each round starts with another path: none is always measured first, or always right after another.
      for (let k = 0; k < order.length; k++) {
        const path = order[(i + k) % order.length] as Path;
        runs[r]?.[path].push(await paths[path]());
      }
    }
  }
  await setLineRate([a1, a2, b1, b2] as SimNode[], undefined);
  const fmt = (xs: number[], digits = 2) => xs.map((x) => x.toFixed(digits)).join(', ');
  const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
  for (const [r, regime] of regimes.entries()) {
    const run = runs[r] as Record<Path, Sample[]>;
    const gbps = (p: Path) => run[p].map((x) => x.gbps);
    const cpu = (p: Path) => run[p].map((x) => x.cpuPerGB);
    const u = median(gbps('underlay'));
    const uCpu = median(cpu('underlay'));
    console.log(`throughput, ${regime.name}:`);
    console.log(
      `  underlay node → node: median ${u.toFixed(2)} Gbit/s (${fmt(gbps('underlay'))}); CPU per GB ${uCpu.toFixed(3)} s (${fmt(cpu('underlay'), 3)})`,
    );
    for (const [path, label, target] of [
      ['hostgw', 'host-gw', 95],
      ['vxlan', 'VXLAN  ', 80],
    ] as const) {
      const xs = gbps(path);
      const ratios = xs.map((x, j) => x / (gbps('underlay')[j] as number));
      const c = median(cpu(path));
      console.log(
        `  pod → pod ${label}:   median ${median(xs).toFixed(2)} Gbit/s (${fmt(xs)}) = ${pct(median(ratios))} of the underlay, median of the rounds' ratios (${ratios.map(pct).join(', ')}; ratio of medians ${pct(median(xs) / u)}; target ≥ ${target} %)`,
      );
      console.log(
        `      CPU per GB ${c.toFixed(3)} s (${fmt(cpu(path), 3)}): ${pct(uCpu / c)} of the underlay's throughput per CPU`,
      );
    }
  }
  console.log(cpuNote);
  console.log(`load average at the end: ${load()}`);
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
