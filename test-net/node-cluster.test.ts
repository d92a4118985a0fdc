/**
 * `ctnet node` on a simulated cluster (test-net/cluster-helpers.ts): three nodes join at once over a real etcd;
 * `ctnet run` containers on each node's network reach each other without NAT (host-gw between the two nodes on
 * one segment, VXLAN to the one behind the router) and the world with NAT; a crashed agent, an expired lease, an
 * etcd outage, a late joiner, hand-made damage that `debug trace` names, and `node down` leaving nothing behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import {
  addNode,
  type Cluster,
  clusterCidr,
  createCluster,
  nodeCli,
  ownedRoutes,
  type SimNode,
  startAgent,
  stopAgent,
  waitFor,
  worldIp,
} from './cluster-helpers.js';
import { nftBin } from './firewall-fixtures.js';
import { busyboxRootfs, ctnet, ensureInitHelper, inspect } from './runner-helpers.js';
import { netnsPath, nsRun } from './sandbox.js';

test.before(ensureInitHelper);

/**
 * The firewall backend of the node rules in the first two tests (the third runs both): nftables and iptables by
 * default, one each; CTNET_TEST_NODE_FIREWALL=iptables|nftables runs both on one backend.
 */
const forced = process.env.CTNET_TEST_NODE_FIREWALL;
const firewallOf = (fallback: string) => ['--firewall', forced ?? fallback];

/** The node rules a namespace holds, per backend: iptables rules of the node chains, nft rules of its table. */
async function nodeRules(ns: string): Promise<{ iptables: string[]; nftables: string[] }> {
  const saved = (await nsRun(ns, 'iptables-save', [])).stdout.split('\n');
  const nft = await nsRun(ns, nftBin, ['list', 'table', 'ip', 'ctnet-node'], { allowFailure: true });
  return {
    iptables: saved.filter((l) => l.startsWith('-A') && l.includes('CTNET-NODE')),
    nftables:
      nft.code === 0
        ? nft.stdout
            .split('\n')
            .map((l) => l.trim())
            .filter((l) => /^ip [sd]addr /.test(l))
        : [],
  };
}

/** A TCP server that answers every line with "from <peer address> <line>" and keeps the connection open. */
const lineServer = `
const net = require('net');
net.createServer((c) => {
  let buf = '';
  c.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { c.write('from ' + c.remoteAddress.replace(/^::ffff:/, '') + ' ' + buf.slice(0, i) + '\\n'); buf = buf.slice(i + 1); } });
  c.on('error', () => {});
}).listen(Number(process.argv[1]), '0.0.0.0', () => process.stdout.write('ready\\n'));`;

/** Connects once, sends "one", waits for the answer, then for a "go" line on stdin, sends "two": one connection. */
const twoStepClient = `
const net = require('net');
const [host, port] = process.argv.slice(1);
const c = net.connect(Number(port), host, () => c.write('one\\n'));
let got = '';
c.on('data', (d) => { got += d; if (got.split('\\n').length === 2) process.stdout.write('connected\\n'); if (got.split('\\n').length === 3) { process.stdout.write(got); process.exit(0); } });
process.stdin.on('data', () => c.write('two\\n'));
c.on('error', (e) => { process.stdout.write('ERR ' + e.code + '\\n'); process.exit(2); });`;

async function serve(t: ExecutionContext, nsPath: string, port: number): Promise<void> {
  const child = spawn('nsenter', [`--net=${nsPath}`, process.execPath, '-e', lineServer, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

/** One request on a fresh connection from namespace `from`: the server's answer, or "ERR …". */
async function ask(from: string, host: string, port: number, msg = 'hi'): Promise<string> {
  const script = `const c=require('net').connect(${port},'${host}',()=>c.write('${msg}\\n'));let o='';c.on('data',d=>{o+=d;if(o.includes('\\n')){process.stdout.write(o.trim());process.exit(0)}});c.on('error',e=>{process.stdout.write('ERR '+e.code);process.exit(2)});setTimeout(()=>{process.stdout.write('ERR timeout');process.exit(2)},3000);`;
  const r = await nsRun(from, process.execPath, ['-e', script], { allowFailure: true });
  return r.stdout.trim();
}

async function ping(from: string, to: string): Promise<boolean> {
  return (await nsRun(from, 'ping', ['-c', '1', '-W', '2', to], { allowFailure: true })).code === 0;
}

interface Pod {
  node: SimNode;
  name: string;
  ip: string;
  netns: string;
}

async function runPod(node: SimNode, name: string, image: string): Promise<Pod> {
  await ctnet(node.renv, ['run', '-d', '--name', name, '--network', 'cluster', image, 'sleep', '600'], { bundle: true });
  const view = await inspect(node.renv, name);
  return { node, name, ip: view.NetworkSettings.IPAddress, netns: view.NetworkSettings.SandboxKey };
}

interface StatusPeer {
  node: string;
  mode: string;
  route: boolean;
  fdb?: boolean;
  neighbour?: boolean;
}

async function status(
  node: SimNode,
): Promise<{ subnet: string; storeConnected: boolean; firewall: string; firewallRules: number; peers: StatusPeer[] }> {
  return JSON.parse((await nodeCli(node, ['status', '--json'])).stdout);
}

/** The cluster of the picture in cluster-helpers.ts: n1 and n2 on segment A, n3 behind the router; no agent yet. */
async function threeNodes(t: ExecutionContext) {
  const cluster: Cluster = await createCluster(t);
  const n1 = await addNode(t, cluster, 'n1', 'A', 11);
  const n2 = await addNode(t, cluster, 'n2', 'A', 12);
  const n3 = await addNode(t, cluster, 'n3', 'B', 13);
  return { cluster, n1, n2, n3, image: await busyboxRootfs(t) };
}

test.serial(
  'three nodes join at once; pod to pod without NAT (host-gw and VXLAN), NAT to the world; graph shows the peers, trace names a broken FDB entry and route, a restarted agent repairs them',
  async (t) => {
    const { cluster, n1, n2, n3, image } = await threeNodes(t);

    // Three nodes joining at the same instant get three distinct subnets.
    const fw = firewallOf('nftables');
    const joined = await Promise.all([n1, n2, n3].map((n) => startAgent(cluster, n, fw)));
    const subnets = joined.map((j) => j.subnet);
    t.is(new Set(subnets).size, 3, `distinct subnets: ${subnets}`);
    const listed = JSON.parse((await nodeCli(n1, ['ls', '--json'])).stdout) as {
      node: string;
      subnet: string;
      vtepMac?: string;
    }[];
    t.deepEqual(
      listed.map((n) => `${n.node}=${n.subnet}`).sort(),
      [`n1=${subnets[0]}`, `n2=${subnets[1]}`, `n3=${subnets[2]}`].sort(),
    );

    // auto: host-gw between the two nodes of segment A, VXLAN to the node behind the router.
    const s1 = await waitFor('n1 to program both peers', async () => {
      const s = await status(n1);
      return s.peers.length === 2 && s.peers.every((p) => p.route) ? s : undefined;
    });
    t.deepEqual(s1.peers.map((p) => `${p.node}:${p.mode}`).sort(), ['n2:host-gw', 'n3:vxlan']);
    t.like(
      s1.peers.find((p) => p.node === 'n3'),
      { route: true, fdb: true, neighbour: true },
    );
    const s3 = await waitFor('n3 to program both peers', async () => {
      const s = await status(n3);
      return s.peers.length === 2 && s.peers.every((p) => p.route) ? s : undefined;
    });
    t.deepEqual(s3.peers.map((p) => `${p.node}:${p.mode}`).sort(), ['n1:vxlan', 'n2:vxlan']);

    // The conflist for kubelet is in the node's CNI dir, reference keys only in the plugins.
    const conflistFile = join(n1.cniDir, '10-ctnet-cluster.conflist');
    t.true(existsSync(conflistFile));

    const [c1, c2, c3] = await Promise.all([runPod(n1, 'c1', image), runPod(n2, 'c2', image), runPod(n3, 'c3', image)]);
    t.true(c1.ip.startsWith((subnets[0] as string).replace(/0\/24$/, '')), `c1 ${c1.ip} in ${subnets[0]}`);
    for (const pod of [c1, c2, c3]) await serve(t, pod.netns, 7000);

    // Pod to pod, both ways, over TCP and ping; the peer sees the sender's own pod IP.
    t.is(await ask(c1.netns, c3.ip, 7000), `from ${c1.ip} hi`, 'n1 → n3 (VXLAN)');
    t.is(await ask(c3.netns, c1.ip, 7000), `from ${c3.ip} hi`, 'n3 → n1 (VXLAN)');
    t.is(await ask(c1.netns, c2.ip, 7000), `from ${c1.ip} hi`, 'n1 → n2 (host-gw)');
    t.is(await ask(c2.netns, c1.ip, 7000), `from ${c2.ip} hi`, 'n2 → n1 (host-gw)');
    t.is(await ask(c2.netns, c3.ip, 7000), `from ${c2.ip} hi`, 'n2 → n3 (VXLAN)');
    t.true(await ping(c1.netns, c3.ip));
    t.true(await ping(c1.netns, c2.ip));
    t.true(await ping(c3.netns, c1.ip));
    // The node reaches its own pods and, without NAT, the pods of other nodes.
    t.is(await ask(n1.ns, c1.ip, 7000), `from ${(subnets[0] as string).replace(/0\/24$/, '1')} hi`);

    // Off the cluster: masqueraded to the node's address.
    await serve(t, netnsPath(cluster.world), 7000);
    t.is(await ask(c1.netns, worldIp, 7000), `from ${n1.ip} hi`);
    t.is(await ask(c3.netns, worldIp, 7000), `from ${n3.ip} hi`);

    // The debugger crosses nodes: graph shows the peers; trace names the hop broken by hand.
    const graph = (await ctnet(n1.renv, ['debug', 'graph'], { bundle: true })).stdout;
    t.regex(graph, new RegExp(`n2 ${subnets[1]}  host-gw via ${n2.ip}`));
    t.regex(graph, new RegExp(`n3 ${subnets[2]}  vxlan ctnet\\.1 → ${n3.ip}`));
    const trace = (ip: string) => ctnet(n1.renv, ['debug', 'trace', 'c1', ip], { bundle: true, allowFailure: true });
    t.is((await trace(c3.ip)).code, 0, 'the VXLAN path is whole');
    t.is((await trace(c2.ip)).code, 0, 'the host-gw path is whole');
    const vtep3 = listed.find((n) => n.node === 'n3')?.vtepMac as string;
    await nsRun(n1.ns, 'bridge', ['fdb', 'del', vtep3, 'dev', 'ctnet.1', 'dst', n3.ip]);
    const noFdb = await trace(c3.ip);
    t.is(noFdb.code, 1);
    t.regex(noFdb.stderr, new RegExp(`broken at hop \\d+ \\(FDB\\): no FDB entry ${vtep3} → ${n3.ip} on ctnet\\.1`));
    t.not(await ask(c1.netns, c3.ip, 7000), `from ${c1.ip} hi`, 'no FDB entry, no path');
    await nsRun(n1.ns, 'ip', ['route', 'del', subnets[1] as string]);
    const noRoute = await trace(c2.ip);
    t.is(noRoute.code, 1);
    t.regex(noRoute.stderr, new RegExp(`broken at hop \\d+ \\(host route\\): no route to ${subnets[1]} via ${n2.ip}`));
    // A restarted agent fixes the drift.
    await stopAgent(n1);
    await startAgent(cluster, n1, fw);
    await waitFor('n1 to reprogram its peers', async () => (await trace(c3.ip)).code === 0 && (await trace(c2.ip)).code === 0);
    t.is(await ask(c1.netns, c3.ip, 7000), `from ${c1.ip} hi`);
    t.is(await ask(c1.netns, c2.ip, 7000), `from ${c1.ip} hi`);

    for (const pod of [c1, c2, c3]) await ctnet(pod.node.renv, ['rm', '-f', pod.name], { bundle: true });
  },
);

test.serial(
  'a crashed agent keeps traffic flowing, its lease lapses, it comes back on its subnet; an etcd outage changes nothing; a late joiner is routed; node down leaves nothing',
  async (t) => {
    const { cluster, n1, n2, n3, image } = await threeNodes(t);
    const fw = firewallOf('iptables');
    const [, j2] = await Promise.all([n1, n2, n3].map((n) => startAgent(cluster, n, fw)));
    const subnet2 = j2?.subnet as string;
    for (const n of [n1, n3])
      await waitFor(`${n.name} to route n2`, async () => (await ownedRoutes(n)).some((r) => r.startsWith(`${subnet2} `)));
    const [c1, c2, c3] = await Promise.all([runPod(n1, 'c1', image), runPod(n2, 'c2', image), runPod(n3, 'c3', image)]);
    for (const pod of [c1, c2, c3]) await serve(t, pod.netns, 7000);

    // kill -9 of node 2's agent: its traffic keeps flowing while its lease lives.
    await stopAgent(n2, 'SIGKILL');
    t.is(await ask(c1.netns, c2.ip, 7000), `from ${c1.ip} hi`, 'n1 → n2 right after the crash');
    t.is(await ask(c3.netns, c2.ip, 7000), `from ${c3.ip} hi`, 'n3 → n2 right after the crash');
    // After the TTL the others withdraw its routes.
    const lapsed = Date.now();
    for (const n of [n1, n3]) {
      await waitFor(
        `${n.name} to withdraw n2`,
        async () => !(await ownedRoutes(n)).some((r) => r.startsWith(`${subnet2} `)),
        20_000,
      );
    }
    t.log(`n2's routes withdrawn ${Date.now() - lapsed} ms after the crash (TTL 5 s)`);
    t.not(await ask(c1.netns, c2.ip, 7000), `from ${c1.ip} hi`, 'no route to n2 any more');
    // Restarted, it gets the same subnet back and the routes return.
    const again = await startAgent(cluster, n2, fw);
    t.is(again.subnet, subnet2);
    for (const n of [n1, n3])
      await waitFor(`${n.name} to route n2 again`, async () => (await ownedRoutes(n)).some((r) => r.startsWith(`${subnet2} `)));
    t.is(await ask(c1.netns, c2.ip, 7000), `from ${c1.ip} hi`, 'n1 → n2 after the restart');

    // etcd killed: an established connection and new ones keep working, also after the lease TTL has passed.
    const established = spawn('nsenter', [`--net=${c1.netns}`, process.execPath, '-e', twoStepClient, c3.ip, '7000'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    t.teardown(() => {
      established.kill('SIGKILL');
    });
    const firstAnswer = new Promise<void>((resolve) => established.stdout?.once('data', () => resolve()));
    await firstAnswer;
    const routesBefore = await Promise.all([n1, n2, n3].map(ownedRoutes));
    await cluster.etcd.kill();
    await new Promise((r) => setTimeout(r, 6000));
    const allOutput = collect(established);
    established.stdin?.write('go\n');
    t.is((await allOutput).trim(), `from ${c1.ip} one\nfrom ${c1.ip} two`, 'the established connection lived through the outage');
    t.is(await ask(c1.netns, c3.ip, 7000), `from ${c1.ip} hi`, 'a new connection n1 → n3 during the outage');
    t.is(await ask(c2.netns, c1.ip, 7000), `from ${c2.ip} hi`, 'a new connection n2 → n1 during the outage');
    t.deepEqual(await Promise.all([n1, n2, n3].map(ownedRoutes)), routesBefore, 'no route changed during the outage');
    t.false((await status(n1)).storeConnected, 'status says the store is away');

    // etcd back: a node that joins afterwards is routed by every other node within the convergence bound.
    await cluster.etcd.start();
    const n4 = await addNode(t, cluster, 'n4', 'A', 14);
    const j4 = await startAgent(cluster, n4, fw);
    await Promise.all(
      [n1, n2, n3].map((n) =>
        waitFor(
          `${n.name} to route the late joiner`,
          async () => (await ownedRoutes(n)).some((r) => r.startsWith(`${j4.subnet} `)),
          10_000,
        ),
      ),
    );
    const converged = Date.now() - j4.joinedAt;
    t.log(`late joiner routed by all three others ${converged} ms after it joined`);
    t.true(converged < 10_000, 'within the documented 10 s after an outage');
    t.true((await status(n1)).storeConnected);
    // No lease lapsed over the outage (etcd gives leases a full TTL again when it comes back): nothing withdrawn.
    const routesAfter = await Promise.all([n1, n2, n3].map(ownedRoutes));
    routesBefore.forEach((before, i) => {
      for (const r of before) t.true(routesAfter[i]?.includes(r), `still there after the outage: ${r}`);
    });

    // node down everywhere (containers first): no route, link, FDB/neighbour entry, rule or conflist left.
    for (const n of [n1, n2, n3]) await ctnet(n.renv, ['rm', '-f', `c${n.name.slice(1)}`], { bundle: true });
    for (const n of [n1, n2, n3, n4]) {
      const r = await nodeCli(n, ['down', '--json']);
      t.like(JSON.parse(r.stdout), { node: n.name, released: true });
    }
    for (const n of [n1, n2, n3, n4]) {
      t.deepEqual(await ownedRoutes(n), [], `${n.name}: no route`);
      const links = (await nsRun(n.ns, 'ip', ['-o', 'link', 'show'])).stdout;
      t.notRegex(links, /ctnet\.\d|ctnode0/, `${n.name}: no VXLAN link, no bridge`);
      t.is((await nsRun(n.ns, 'bridge', ['fdb', 'show', 'dynamic'])).stdout.trim(), '', `${n.name}: no FDB entry`);
      t.is((await nsRun(n.ns, 'ip', ['neigh', 'show', 'nud', 'permanent'])).stdout.trim(), '', `${n.name}: no neighbour entry`);
      const rules = (await nsRun(n.ns, 'iptables-save', [])).stdout;
      t.notRegex(rules, /CTNET-NODE|ctnode0/, `${n.name}: no rule or chain`);
      t.notRegex((await nsRun(n.ns, nftBin, ['list', 'ruleset'])).stdout, /ctnet-node/, `${n.name}: no node table`);
      t.deepEqual(readdirSync(n.cniDir), [], `${n.name}: no conflist`);
      t.false(existsSync(join(n.renv.root, 'networks', 'cluster.conflist')));
      t.is(
        (await nsRun(n.ns, 'ip', ['route', 'show', clusterCidr, 'root', clusterCidr])).stdout.trim(),
        '',
        `${n.name}: nothing in ${clusterCidr}`,
      );
    }
    const left = await nodeCli(n1, ['ls', '--json', '--store', cluster.etcd.storeUrl]);
    t.deepEqual(JSON.parse(left.stdout), [], 'every subnet released');
  },
);

test.serial(
  "the node's rules follow --firewall: on nftables and on iptables pods reach pods without NAT and the world with it; a restart on the other backend moves the rules; node down clears both",
  async (t) => {
    const { cluster, n1, n2, image } = await threeNodes(t);
    const [j1, j2] = await Promise.all([n1, n2].map((n) => startAgent(cluster, n, ['--firewall', 'nftables'])));
    await waitFor('n1 to route n2', async () => (await ownedRoutes(n1)).some((r) => r.startsWith(`${j2?.subnet} `)));
    const [c1, c2] = await Promise.all([runPod(n1, 'c1', image), runPod(n2, 'c2', image)]);
    await serve(t, c2.netns, 7000);
    await serve(t, netnsPath(cluster.world), 7000);
    const cluster16 = clusterCidr;
    const expected = {
      nftables: [
        `ip saddr ${cluster16} ip daddr ${cluster16} return comment "ctnet node: pod to pod, never NAT"`,
        `ip saddr ${j1?.subnet} ip daddr != 224.0.0.0/4 masquerade fully-random comment "ctnet node: pod off the cluster"`,
        `ip saddr ${cluster16} accept comment "ctnet node: from the cluster"`,
        `ip daddr ${cluster16} accept comment "ctnet node: to the cluster"`,
      ],
      iptables: [
        '-A POSTROUTING -m comment --comment "ctnet node" -j CTNET-NODE-MASQ',
        `-A CTNET-NODE-MASQ -s ${cluster16} -d ${cluster16} -j RETURN`,
        `-A CTNET-NODE-MASQ -s ${j1?.subnet} ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`,
        '-A FORWARD -m comment --comment "ctnet node" -j CTNET-NODE-FWD',
        `-A CTNET-NODE-FWD -s ${cluster16} -j ACCEPT`,
        `-A CTNET-NODE-FWD -d ${cluster16} -j ACCEPT`,
      ],
    };
    const conflist = () => JSON.parse(readFileSync(join(n1.cniDir, '10-ctnet-cluster.conflist'), 'utf8'));

    for (const backend of ['nftables', 'iptables'] as const) {
      if (backend === 'iptables') {
        await stopAgent(n1);
        await startAgent(cluster, n1, ['--firewall', 'iptables']);
      }
      const rules = await nodeRules(n1.ns);
      t.deepEqual(rules[backend].sort(), [...expected[backend]].sort(), `${backend}: the node rules`);
      t.deepEqual(rules[backend === 'iptables' ? 'nftables' : 'iptables'], [], `${backend}: none in the other backend`);
      t.like(await status(n1), { firewall: backend, firewallRules: expected[backend].length });
      t.is(conflist().plugins[1].backend, backend, `${backend}: the network's port forwards use it too`);
      t.is(await ask(c1.netns, c2.ip, 7000), `from ${c1.ip} hi`, `${backend}: pod to pod without NAT`);
      t.is(await ask(c1.netns, worldIp, 7000), `from ${n1.ip} hi`, `${backend}: off the cluster, the node's address`);
    }

    for (const pod of [c1, c2]) await ctnet(pod.node.renv, ['rm', '-f', pod.name], { bundle: true });
    await stopAgent(n1);
    await startAgent(cluster, n1, ['--firewall', 'nftables']);
    t.is((await nodeRules(n1.ns)).nftables.length, 4);
    for (const n of [n1, n2]) await nodeCli(n, ['down']);
    for (const n of [n1, n2]) t.deepEqual(await nodeRules(n.ns), { iptables: [], nftables: [] }, `${n.name}: nothing left`);
  },
);

function collect(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', () => resolve(out));
  });
}
