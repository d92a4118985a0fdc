/**
 * `ctnet node` on a simulated cluster (test-net/cluster-helpers.ts): three nodes join at once over a real etcd;
 * `ctnet run` containers on each node's network reach each other without NAT (host-gw between the two nodes on
 * one segment, VXLAN to the one behind the router) and the world with NAT; a crashed agent, an expired lease, an
 * etcd outage, a late joiner, hand-made damage that `debug trace` names, and `node down` leaving nothing behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
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
import { busyboxRootfs, ctnet, ensureInitHelper, inspect } from './runner-helpers.js';
import { netnsPath, nsRun } from './sandbox.js';

test.before(ensureInitHelper);

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
  await ctnet(node.renv, ['run', '-d', '--name', name, '--network', 'cluster', image, 'sleep', '600']);
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

async function status(node: SimNode): Promise<{ subnet: string; storeConnected: boolean; peers: StatusPeer[] }> {
  return JSON.parse((await nodeCli(node, ['status', '--json'])).stdout);
}

test('three nodes join at once; pod to pod without NAT (host-gw and VXLAN), NAT to the world', async (t) => {
  const cluster: Cluster = await createCluster(t);
  const n1 = await addNode(t, cluster, 'n1', 'A', 11);
  const n2 = await addNode(t, cluster, 'n2', 'A', 12);
  const n3 = await addNode(t, cluster, 'n3', 'B', 13);
  const image = await busyboxRootfs(t);

  // Three nodes joining at the same instant get three distinct subnets.
  const joined = await Promise.all([n1, n2, n3].map((n) => startAgent(cluster, n)));
  const subnets = joined.map((j) => j.subnet);
  t.is(new Set(subnets).size, 3, `distinct subnets: ${subnets}`);
  const listed = JSON.parse((await nodeCli(n1, ['ls', '--json'])).stdout) as { node: string; subnet: string; backend: string }[];
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
});
