import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { CtnetError, ErrorCode, formatIp, type IpAddr, type NetConf, parseIp } from '../core/index.js';
import { parseIpamConfig } from './config.js';
import { lockFile } from './flock.js';
import { allocateLeases, checkAvailability, collectLeases, releaseLeases, toIpConfig, verifyLeases } from './leases.js';
import { DiskLeaseStore } from './store.js';

function setup(t: ExecutionContext, ipam: Record<string, unknown>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'ctnet-ipam-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const conf: NetConf = { cniVersion: '1.1.0', name: 'net1', type: 'host-local', ipam: { type: 'host-local', dataDir, ...ipam } };
  const cfg = parseIpamConfig(conf);
  const store = new DiskLeaseStore();
  const dir = join(dataDir, 'net1');
  const leases = () =>
    readdirSync(dir)
      .filter((n) => parseIp(n))
      .sort();
  const add = async (id: string, ifname = 'eth0', requested = new Map<number, IpAddr>()) =>
    (await allocateLeases(store, cfg, { containerId: id, ifname }, requested)).map((a) => toIpConfig(a).address);
  return { cfg, store, dir, dataDir, leases, add };
}

async function code(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return err instanceof CtnetError ? err.code : -1;
  }
}

test('round-robin from the cursor, wrapping, skipping gateway, network and broadcast', async (t) => {
  // 10.1.0.0/29: .0 network, .7 broadcast; gateway .4 in the middle of the range.
  const { add, cfg, dir, store } = setup(t, {
    ranges: [[{ subnet: '10.1.0.0/29', rangeStart: '10.1.0.0', rangeEnd: '10.1.0.7', gateway: '10.1.0.4' }]],
  });
  const got = [];
  for (const id of ['a', 'b', 'c', 'd', 'e']) got.push(...(await add(id)));
  t.deepEqual(got, ['10.1.0.1/29', '10.1.0.2/29', '10.1.0.3/29', '10.1.0.5/29', '10.1.0.6/29']);
  t.is(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8'), '10.1.0.6');
  t.is(await code(add('f')), ErrorCode.noAddressesLeft);
  // Free .2, then the cursor (.6) wraps around to it.
  await releaseLeases(store, cfg, { containerId: 'b', ifname: 'eth0' });
  t.deepEqual(await add('g'), ['10.1.0.2/29']);
});

test('round-robin continues after the last reserved address, not the lowest free one', async (t) => {
  const { add, cfg, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  t.deepEqual(await add('a'), ['10.1.0.2/24']);
  t.deepEqual(await add('b'), ['10.1.0.3/24']);
  await releaseLeases(store, cfg, { containerId: 'a', ifname: 'eth0' });
  t.deepEqual(await add('c'), ['10.1.0.4/24']);
});

test('the cursor wraps across the ranges of a set', async (t) => {
  const { add } = setup(t, {
    ranges: [
      [
        { subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.11' },
        { subnet: '10.2.0.0/24', rangeStart: '10.2.0.20', rangeEnd: '10.2.0.20' },
      ],
    ],
  });
  const got = [];
  for (const id of ['a', 'b', 'c']) got.push(...(await add(id)));
  t.deepEqual(got, ['10.1.0.10/24', '10.1.0.11/24', '10.2.0.20/24']);
});

test('IPv6 and dual stack: one address per set, gateway returned, file named in canonical form', async (t) => {
  const v6 = setup(t, { ranges: [[{ subnet: 'fd00::/120' }]] });
  const allocations = await allocateLeases(v6.store, v6.cfg, { containerId: 'x', ifname: 'eth0' }, new Map());
  t.deepEqual(toIpConfig(allocations[0]!), { address: 'fd00::2/120', gateway: 'fd00::1' });
  const { add, leases } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00:0:0:1::/64' }]] });
  t.deepEqual(await add('a'), ['10.1.0.2/24', 'fd00:0:0:1::2/64']);
  t.deepEqual(leases(), ['10.1.0.2', 'fd00:0:0:1::2']);
});

test('lease files: reference format and mode 0600; cursor per set', async (t) => {
  const { add, dir } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] });
  await add('cid1', 'net0');
  t.is(readFileSync(join(dir, '10.1.0.2'), 'utf8'), 'cid1\r\nnet0');
  t.is(statSync(join(dir, '10.1.0.2')).mode & 0o777, 0o600);
  t.is(readFileSync(join(dir, 'last_reserved_ip.1'), 'utf8'), 'fd00::2');
  t.true(statSync(join(dir, 'lock')).isFile());
});

test('duplicate allocation for one (id, ifname) is refused; another ifname is fine', async (t) => {
  const { add, leases } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  await add('a');
  const err = await t.throwsAsync(add('a'), { instanceOf: CtnetError });
  t.is((err as CtnetError).code, ErrorCode.exists);
  t.regex(err!.message, /10\.1\.0\.2 has been allocated to a, duplicate allocation is not allowed/);
  t.deepEqual(await add('a', 'eth1'), ['10.1.0.3/24']);
  t.is(leases().length, 2);
});

test('a failing later set releases what earlier sets reserved', async (t) => {
  const { add, leases, cfg, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.2.0.0/30' }]] });
  t.deepEqual(await add('a'), ['10.1.0.2/24', '10.2.0.2/30']);
  const err = await t.throwsAsync(add('b'), { instanceOf: CtnetError });
  t.is((err as CtnetError).code, ErrorCode.noAddressesLeft);
  t.regex(err!.message, /range set ipam\.ranges\[1\]/);
  t.deepEqual(leases(), ['10.1.0.2', '10.2.0.2']);
  t.throws(() => checkAvailability(store, cfg), { instanceOf: CtnetError, message: /ipam\.ranges\[1\]/ });
});

test('requested address: reserved when free, clear error when taken', async (t) => {
  const { add, cfg, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  t.deepEqual(await add('a', 'eth0', new Map([[0, parseIp('10.1.0.77')!]])), ['10.1.0.77/24']);
  const err = await t.throwsAsync(add('b', 'eth0', new Map([[0, parseIp('10.1.0.77')!]])), { instanceOf: CtnetError });
  t.regex(err!.message, /10\.1\.0\.77: it is already allocated to a eth0/);
  // The cursor follows the requested address, as in the reference.
  t.deepEqual(await add('c'), ['10.1.0.78/24']);
  await verifyLeases(store, cfg, { containerId: 'a', ifname: 'eth0' }, [{ address: '10.1.0.77/24' }]);
  t.pass();
});

test('DEL releases every lease of (id, ifname), legacy ID-only files too; twice is fine', async (t) => {
  const { add, cfg, dir, leases, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] });
  await add('a');
  await add('b');
  writeFileSync(join(dir, '10.1.0.99'), 'old\n');
  t.deepEqual((await releaseLeases(store, cfg, { containerId: 'a', ifname: 'eth0' })).sort(), ['10.1.0.2', 'fd00::2']);
  t.deepEqual(await releaseLeases(store, cfg, { containerId: 'a', ifname: 'eth0' }), []);
  t.deepEqual(await releaseLeases(store, cfg, { containerId: 'old', ifname: 'eth0' }), ['10.1.0.99']);
  t.deepEqual(leases(), ['10.1.0.3', 'fd00::3']);
});

test('CHECK: succeeds only while a lease exists; a prevResult address leased to someone else fails', async (t) => {
  const { add, cfg, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  await add('a');
  await add('b');
  await verifyLeases(store, cfg, { containerId: 'a', ifname: 'eth0' }, [{ address: '10.1.0.2/24' }]);
  await t.throwsAsync(verifyLeases(store, cfg, { containerId: 'a', ifname: 'eth0' }, [{ address: '10.1.0.3/24' }]), {
    message: /leased to b eth0/,
  });
  await t.throwsAsync(verifyLeases(store, cfg, { containerId: 'zz', ifname: 'eth0' }, []), { message: /failed to find a lease/ });
});

test('GC frees leases whose attachment is not listed, keeps listed ones, keeps legacy by ID', async (t) => {
  const { add, cfg, dir, leases, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  await add('keep');
  await add('drop');
  await add('keep', 'eth1');
  writeFileSync(join(dir, '10.1.0.50'), 'keep');
  writeFileSync(join(dir, '10.1.0.51'), 'gone');
  const released = await collectLeases(store, cfg, [
    { containerID: 'keep', ifname: 'eth0' },
    { containerID: 'other', ifname: 'eth0' },
  ]);
  t.deepEqual(released.sort(), ['10.1.0.3', '10.1.0.4', '10.1.0.51']);
  t.deepEqual(leases(), ['10.1.0.2', '10.1.0.50']);
  await collectLeases(store, cfg, []);
  t.deepEqual(leases(), []);
});

test('GC never touches another network directory', async (t) => {
  const { add, cfg, dataDir, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  mkdirSync(join(dataDir, 'net2'));
  writeFileSync(join(dataDir, 'net2', '10.1.0.9'), 'x\r\neth0');
  await add('a');
  await collectLeases(store, cfg, []);
  t.deepEqual(readdirSync(join(dataDir, 'net2')), ['10.1.0.9']);
});

test('STATUS: code 50 when a set is full, fine otherwise', async (t) => {
  const { add, cfg, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/30' }]] });
  t.notThrows(() => checkAvailability(store, cfg));
  await add('a');
  const err = t.throws(() => checkAvailability(store, cfg), { instanceOf: CtnetError });
  t.is((err as CtnetError).code, ErrorCode.notAvailable);
});

test('leases another writer made or replaced are seen by a store that read the directory before', async (t) => {
  const { add, cfg, dir, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  await add('a');
  // A reference-style writer: new lease + cursor update.
  writeFileSync(join(dir, '10.1.0.3'), 'b\r\neth0');
  writeFileSync(join(dir, 'last_reserved_ip.0'), '10.1.0.3');
  await t.throwsAsync(add('b'), { message: /duplicate allocation/ });
  // And a replacement under the same name (DEL a, ADD c on .2).
  unlinkSync(join(dir, '10.1.0.2'));
  writeFileSync(join(dir, '10.1.0.2'), 'c\r\neth0');
  writeFileSync(join(dir, 'last_reserved_ip.0'), '10.1.0.2');
  await t.throwsAsync(add('c'), { message: /10\.1\.0\.2 has been allocated to c/ });
  t.deepEqual(await releaseLeases(store, cfg, { containerId: 'a', ifname: 'eth0' }), []);
  t.deepEqual(await releaseLeases(store, cfg, { containerId: 'c', ifname: 'eth0' }), ['10.1.0.2']);
});

test('a held lock times out with code 11 instead of waiting forever', async (t) => {
  const { cfg, dir, add, store } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  await add('a');
  const held = await lockFile(join(dir, 'lock'));
  t.teardown(() => held.release());
  const started = Date.now();
  const err = await t.throwsAsync(
    allocateLeases(store, cfg, { containerId: 'b', ifname: 'eth0' }, new Map(), { timeoutMs: 150 }),
    {
      instanceOf: CtnetError,
    },
  );
  t.is((err as CtnetError).code, ErrorCode.tryAgainLater);
  // The bound is far from the 150 ms asked for, so a loaded machine cannot fail it; waiting forever still would.
  t.true(Date.now() - started < 15_000);
  held.release();
  t.deepEqual(await add('b'), ['10.1.0.3/24']);
});

test('concurrent allocations in one process never share an address', async (t) => {
  const { add, leases } = setup(t, { ranges: [[{ subnet: '10.1.0.0/24' }]] });
  const all = (await Promise.all(Array.from({ length: 20 }, (_, i) => add(`c${i}`)))).flat();
  t.is(new Set(all).size, 20);
  t.is(leases().length, 20);
  t.is(formatIp(parseIp('10.1.0.2')!), '10.1.0.2');
});
