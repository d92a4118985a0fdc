/**
 * A lease store that keeps what it read between calls (ipam/store.ts: what the agent does) side by side with the
 * reference /usr/lib/cni/host-local and with our own plugin binary, on one lease dir. The kept store lives in this
 * test process (allocateLeases/releaseLeases, as the agent calls them); the binaries run in a sandbox host namespace.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { formatIp, type IpAddr, parseIp } from '../core/index.js';
import { allocateLeases, DiskLeaseStore, parseIpamConfig, releaseLeases } from '../ipam/index.js';
import { cniBinDir, createNetns, createSandbox, netnsPath, type PluginOutcome, referenceCniDir, runPlugin } from './sandbox.js';

const ours = join(cniBinDir, 'host-local');
const reference = join(referenceCniDir, 'host-local');
const network = 'keptnet';

async function setup(t: ExecutionContext) {
  const sb = await createSandbox(t);
  const netns = netnsPath(await createNetns(t, 'c'));
  const dataDir = sb.dir;
  const conf = {
    cniVersion: '1.0.0',
    name: network,
    type: 'host-local',
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.99.0.0/24' }]] },
  };
  const cfg = parseIpamConfig(conf);
  const store = new DiskLeaseStore();
  const who = (id: string) => ({ containerId: id, ifname: 'eth0' });
  /** The kept store's ADD and DEL, in this process. */
  const keptAdd = async (id: string, ip?: string) => {
    const requested = ip ? new Map([[0, parseIp(ip) as IpAddr]]) : new Map<number, IpAddr>();
    return (await allocateLeases(store, cfg, who(id), requested)).map((a) => formatIp(a.ip));
  };
  const keptDel = async (id: string) => (await releaseLeases(store, cfg, who(id))).sort();
  const call = (binary: string, command: 'ADD' | 'DEL', id: string, args?: string) =>
    runPlugin(sb.host, binary, { command, containerId: id, netns, ifname: 'eth0', ...(args && { args }) }, conf);
  const leases = () => {
    const dir = join(dataDir, network);
    return existsSync(dir)
      ? readdirSync(dir)
          .filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n))
          .sort()
      : [];
  };
  const kept = () => store.keeps(dataDir, network);
  return { keptAdd, keptDel, call, leases, kept };
}

function addresses(r: PluginOutcome): string[] {
  return ((r.json?.ips as { address: string }[] | undefined) ?? []).map((i) => i.address.split('/')[0] as string);
}

function ok(t: ExecutionContext, r: PluginOutcome, what: string): void {
  t.is(r.exitCode, 0, `${what}: ${r.stdout} ${r.stderr}`);
}

test('kept state and the reference: each sees, refuses and releases the other’s leases', async (t) => {
  const e = await setup(t);
  t.deepEqual(await e.keptAdd('a'), ['10.99.0.2']);
  t.deepEqual(await e.keptAdd('b'), ['10.99.0.3']);
  t.true(e.kept());
  const ref = await e.call(reference, 'ADD', 'refc');
  ok(t, ref, 'reference ADD');
  t.deepEqual(addresses(ref), ['10.99.0.4']);
  await t.throwsAsync(e.keptAdd('refc'), { message: /10\.99\.0\.4 has been allocated to refc/ });
  t.deepEqual(await e.keptAdd('c'), ['10.99.0.5'], 'round-robin continues after the reference’s cursor');
  const dup = await e.call(reference, 'ADD', 'c');
  t.is(dup.exitCode, 1, 'the reference refuses a second lease for c');
  ok(t, await e.call(reference, 'DEL', 'a'), 'reference DEL of a kept-view lease');
  t.deepEqual(await e.keptDel('a'), []);
  t.deepEqual(await e.keptDel('refc'), ['10.99.0.4']);
  t.deepEqual(e.leases(), ['10.99.0.3', '10.99.0.5']);
  t.true(e.kept());
});

test('kept state: the reference re-reserves a static address for another container, cursor text unchanged', async (t) => {
  const e = await setup(t);
  await e.keptAdd('x');
  t.deepEqual(await e.keptAdd('a', '10.99.0.50'), ['10.99.0.50']);
  t.true(e.kept());
  // A pod with a static IP recreated under a new sandbox ID, by the reference: .50 now belongs to b.
  ok(t, await e.call(reference, 'DEL', 'a'), 'reference DEL');
  const b = await e.call(reference, 'ADD', 'b', 'IP=10.99.0.50');
  ok(t, b, 'reference ADD with IP=');
  t.deepEqual(addresses(b), ['10.99.0.50']);
  t.deepEqual(await e.keptDel('b'), ['10.99.0.50']);
  t.deepEqual(await e.keptDel('a'), []);
  t.deepEqual(e.leases(), ['10.99.0.2']);
});

test('plugin processes: the reference re-reserves a static address for another container, cursor text unchanged', async (t) => {
  const e = await setup(t);
  ok(t, await e.call(ours, 'ADD', 'a', 'IP=10.99.0.60'), 'our ADD with IP=');
  ok(t, await e.call(reference, 'DEL', 'a'), 'reference DEL');
  ok(t, await e.call(reference, 'ADD', 'b', 'IP=10.99.0.60'), 'reference ADD with IP=');
  const again = await e.call(ours, 'ADD', 'b');
  t.is(again.exitCode, 1, 'ours refuses a second lease for b');
  ok(t, await e.call(ours, 'DEL', 'b'), 'our DEL');
  t.deepEqual(e.leases(), []);
});

test('kept state, our plugin processes and the reference, concurrently: distinct addresses, all released', async (t) => {
  const e = await setup(t);
  await e.keptAdd('warm');
  await e.keptDel('warm');
  t.true(e.kept());
  const ids = Array.from({ length: 18 }, (_, i) => `m${i}`);
  const got = await Promise.all(
    ids.map(async (id, i) => {
      if (i % 3 === 0) return e.keptAdd(id);
      const r = await e.call(i % 3 === 1 ? ours : reference, 'ADD', id);
      ok(t, r, `ADD ${id}`);
      return addresses(r);
    }),
  );
  const all = got.flat();
  t.is(new Set(all).size, ids.length);
  t.deepEqual(e.leases(), [...all].sort());
  for (const id of ids) t.is((await e.keptDel(id)).length, 1, `kept DEL ${id}`);
  t.deepEqual(e.leases(), []);
});
