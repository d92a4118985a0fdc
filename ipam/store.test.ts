/**
 * The disk lease store (store.ts): what one store keeps between calls, and the lease files it writes. Each store
 * object plays one process. Each "kept" test has another writer change the directory behind the store's back, as
 * the reference plugin (or another ctnet process) does, and checks that the store still finds, and never loses,
 * every lease. "Another writer" writes the files the way /usr/lib/cni/host-local does: a lease file, then its cursor.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { NetConf } from '../core/index.js';
import { parseIp } from '../core/index.js';
import { parseIpamConfig } from './config.js';
import { listLeases } from './lease-files.js';
import { allocateLeases, releaseLeases, toIpConfig } from './leases.js';
import { DiskLeaseStore } from './store.js';

const leaseCall = join(import.meta.dirname, 'testing', 'lease-call.ts');

function setup(t: ExecutionContext, subnet = '10.1.0.0/24', base = tmpdir()) {
  const dataDir = mkdtempSync(join(base, 'ctnet-ipam-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const conf: NetConf = {
    cniVersion: '1.1.0',
    name: 'net1',
    type: 'host-local',
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]] },
  };
  const cfg = parseIpamConfig(conf);
  const dir = join(dataDir, 'net1');
  let store = new DiskLeaseStore();
  const add = async (id: string, s = store) =>
    (await allocateLeases(s, cfg, { containerId: id, ifname: 'eth0' }, new Map())).map((a) => toIpConfig(a).address);
  const del = async (id: string, s = store) => (await releaseLeases(s, cfg, { containerId: id, ifname: 'eth0' })).sort();
  const leases = () =>
    readdirSync(dir)
      .filter((n) => parseIp(n))
      .sort();
  /** Another writer's ADD: the lease file, then the cursor (even when its text does not change). */
  const foreignAdd = (ip: string, id: string) => {
    writeFileSync(join(dir, ip), `${id}\r\neth0`);
    writeFileSync(join(dir, 'last_reserved_ip.0'), ip);
  };
  /** Another writer's DEL: the reference removes the file and leaves the cursor alone. */
  const foreignDel = (ip: string) => unlinkSync(join(dir, ip));
  /** Plays a new process: the next call reads the directory as a plugin binary would. */
  const newProcess = () => {
    store = new DiskLeaseStore();
  };
  const kept = () => store.keeps(dataDir, 'net1');
  return { cfg, dataDir, dir, add, del, leases, foreignAdd, foreignDel, newProcess, kept };
}

/** Where the kernel gives no multigrain timestamps, the store never keeps: the "kept" tests then test reading. */
const keeping = (() => {
  const [major = 0, minor = 0] = (spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout ?? '').split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 13);
})();

test('a store keeps what it read of a directory between calls', async (t) => {
  const { add, del, kept } = setup(t);
  t.false(kept());
  t.deepEqual(await add('a'), ['10.1.0.2/24']);
  t.is(kept(), keeping);
  t.deepEqual(await add('b'), ['10.1.0.3/24']);
  t.deepEqual(await del('a'), ['10.1.0.2']);
  t.deepEqual(await add('c'), ['10.1.0.4/24']);
  t.is(kept(), keeping);
});

test('kept: a lease another writer made is found by DEL and refused as a duplicate by ADD', async (t) => {
  const { add, del, foreignAdd, leases } = setup(t);
  await add('a');
  await add('b');
  foreignAdd('10.1.0.50', 'x');
  await t.throwsAsync(add('x'), { message: /10\.1\.0\.50 has been allocated to x/ });
  t.deepEqual(await add('c'), ['10.1.0.51/24'], 'round-robin continues after the other writer’s cursor');
  t.deepEqual(await del('x'), ['10.1.0.50']);
  t.deepEqual(leases(), ['10.1.0.2', '10.1.0.3', '10.1.0.51']);
});

test('kept: a lease file written without any cursor change is still found', async (t) => {
  const { add, del, dir } = setup(t);
  await add('a');
  await add('b');
  writeFileSync(join(dir, '10.1.0.99'), 'x\r\neth0');
  t.deepEqual(await del('x'), ['10.1.0.99']);
});

test('kept: an address released and re-reserved by another writer for someone else, cursor text unchanged', async (t) => {
  const { add, del, foreignAdd, foreignDel, leases } = setup(t);
  await add('a');
  t.deepEqual(await add('b'), ['10.1.0.3/24']);
  foreignDel('10.1.0.3');
  foreignAdd('10.1.0.3', 'c');
  t.deepEqual(await del('c'), ['10.1.0.3']);
  t.deepEqual(leases(), ['10.1.0.2']);
  t.deepEqual(await del('b'), []);
});

test('kept: an address another writer freed is handed out again, no false "no addresses left"', async (t) => {
  // 10.1.0.0/29: .1 gateway, .7 broadcast, five addresses.
  const { add, foreignDel } = setup(t, '10.1.0.0/29');
  for (const id of ['a', 'b', 'c', 'd', 'e']) await add(id);
  await t.throwsAsync(add('f'), { message: /no IP addresses available/ });
  foreignDel('10.1.0.4');
  t.deepEqual(await add('f'), ['10.1.0.4/29']);
});

test('kept: a directory deleted and made anew at the same path is read anew', async (t) => {
  const { add, del, dir } = setup(t);
  await add('a');
  await add('b');
  rmSync(dir, { recursive: true });
  mkdirSync(dir);
  writeFileSync(join(dir, '10.1.0.3'), 'x\r\neth0');
  t.deepEqual(await del('b'), []);
  t.deepEqual(await add('a'), ['10.1.0.2/24'], 'a’s old lease went with the old directory');
  t.deepEqual(await del('x'), ['10.1.0.3']);
});

test('kept: a ctnet plugin process working on the same directory in between', async (t) => {
  const { add, del, dataDir } = setup(t);
  await add('a');
  await add('b');
  const call = (command: string, id: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', leaseCall, command, dataDir, 'net1', '10.1.0.0/24', id], {
      encoding: 'utf8',
    });
    t.is(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as string[];
  };
  t.deepEqual(call('ADD', 'p'), ['10.1.0.4']);
  t.deepEqual(call('DEL', 'a'), ['10.1.0.2']);
  t.deepEqual(await del('p'), ['10.1.0.4']);
  t.deepEqual(await add('q'), ['10.1.0.5/24'], 'round-robin continues after the other process’s cursor');
  t.deepEqual(await del('a'), []);
  t.deepEqual(call('DEL', 'q'), ['10.1.0.5']);
});

for (const [where, base] of [
  ['the temp dir', tmpdir()],
  ['tmpfs', '/dev/shm'],
] as const) {
  test(`kept, on ${where}: two stores alternating call by call, within one clock tick, each sees every change of the other`, async (t) => {
    if (!existsSync(base)) return t.pass(`${base} is missing`);
    const { add, del } = setup(t, '10.1.0.0/24', base);
    const one = new DiskLeaseStore();
    const two = new DiskLeaseStore();
    await add('warm', one);
    await del('warm', two);
    for (let i = 0; i < 300; i++) {
      const id = `c${i % 7}`;
      const got = await add(id, one);
      // two must see one's new lease (created, linked: the directory changed) ...
      t.deepEqual(await del(id, two), [got[0]?.split('/')[0]], `round ${i}: DEL by the other store`);
      // ... and one must see two's unlink, or it would refuse this as a duplicate.
      t.is((await add(id, one)).length, 1, `round ${i}: ADD again by the first store`);
      t.is((await del(id, one)).length, 1);
    }
  });
}

test('a leftover temp file is no lease: readers skip it, the next locked call removes it', async (t) => {
  const { add, dir, leases } = setup(t);
  await add('a');
  // A writer killed between writing its temp file and linking it into place.
  writeFileSync(join(dir, 'reserving.10.1.0.3'), 'x\r\neth0');
  t.deepEqual(
    listLeases(dir).map((l) => l.ip),
    ['10.1.0.2'],
  );
  t.deepEqual(await add('b'), ['10.1.0.3/24'], 'the address it was writing is free');
  t.false(existsSync(join(dir, 'reserving.10.1.0.3')));
  t.deepEqual(leases(), ['10.1.0.2', '10.1.0.3']);
});

test('a leftover temp file linked to its lease (killed after the link) leaves the lease whole', async (t) => {
  const { add, del, dir, newProcess } = setup(t);
  await add('a');
  linkSync(join(dir, '10.1.0.2'), join(dir, 'reserving.10.1.0.2'));
  newProcess();
  await t.throwsAsync(add('a'), { message: /duplicate allocation/ });
  t.false(existsSync(join(dir, 'reserving.10.1.0.2')));
  t.is(readFileSync(join(dir, '10.1.0.2'), 'utf8'), 'a\r\neth0');
  // A leftover of that address again, then a new lease of it: the leftover is unlinked, never written through.
  linkSync(join(dir, '10.1.0.2'), join(dir, 'reserving.10.1.0.2'));
  t.deepEqual(await del('a'), ['10.1.0.2']);
  t.deepEqual(await add('b'), ['10.1.0.3/24']);
  t.false(existsSync(join(dir, 'reserving.10.1.0.2')));
});

test('a writer killed at any point leaves every lease file whole, and no temp file after the next call', async (t) => {
  const { add, del, dataDir, dir, newProcess } = setup(t, '10.1.0.0/26');
  const loop = join(import.meta.dirname, 'testing', 'lease-loop.ts');
  const kills = 8;
  for (let k = 0; k < kills; k++) {
    const child = spawn(process.execPath, ['--import', 'tsx', loop, dataDir, 'net1', '10.1.0.0/26', `k${k}`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // Killed once it has made some calls, at a point of its loop that differs each time.
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 40));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    for (const name of readdirSync(dir).filter((n) => parseIp(n))) {
      t.regex(readFileSync(join(dir, name), 'utf8'), /^k\d+-\d+\r\neth0$/, `lease ${name} after kill ${k}`);
    }
    newProcess();
    await add('probe');
    t.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('reserving.')),
      [],
      `no temp file after the call that follows kill ${k}`,
    );
    t.is((await del('probe')).length, 1);
  }
});

test('new processes, call by call within one clock tick, with another writer in between: the owner index never hides a change', async (t) => {
  const { add, del, foreignAdd, foreignDel, newProcess } = setup(t);
  for (let i = 0; i < 100; i++) {
    newProcess();
    const ip = (await add('a'))[0]?.split('/')[0] as string;
    // The reference moves a's address to x under the same name: the index, stamped by the ADD, must not say "a".
    foreignDel(ip);
    foreignAdd(ip, 'x');
    newProcess();
    t.deepEqual(await del('a'), [], `round ${i}: a has no lease left`);
    newProcess();
    t.deepEqual(await del('x'), [ip], `round ${i}: x's lease found`);
  }
});

test('the owner index: a new process reads it instead of the lease files; damaged or torn, it is ignored and rewritten', async (t) => {
  const { add, del, dir, newProcess } = setup(t);
  await add('a');
  await add('b');
  const index = join(dir, 'ctnet-owners');
  const text = readFileSync(index, 'utf8');
  t.regex(text, /^ctnet-owners 2\n(.*\n)*= \d+:\d+:\d+:\d+:\d+\n$/);
  // Trusted by a new process: it appends to the index (a distrusted one is written anew).
  newProcess();
  await add('c');
  t.true(readFileSync(index, 'utf8').startsWith(text), 'appended to');
  // A torn append (no stamp last) and a damaged record: each makes the next process read every file.
  writeFileSync(index, `${readFileSync(index, 'utf8')}+ 10.1.0.3 "zz\r\neth0"\n`);
  newProcess();
  t.deepEqual(await del('b'), ['10.1.0.3']);
  writeFileSync(index, readFileSync(index, 'utf8').replace(/^\+ 10\.1\.0\.2 .*$/m, '+ 10.1.0.2 {not json'));
  newProcess();
  t.deepEqual(await del('a'), ['10.1.0.2']);
  t.regex(readFileSync(index, 'utf8'), /^ctnet-owners 2\n/);
});

test('the owner index grows by appends and is compacted, staying proportional to live leases', async (t) => {
  const { add, del, dir } = setup(t);
  const index = join(dir, 'ctnet-owners');
  await add('base');
  await add('one');
  const before = readFileSync(index, 'utf8');
  await add('two');
  t.true(readFileSync(index, 'utf8').startsWith(before), 'an ADD appends');
  for (let i = 0; i < 60; i++) {
    await add(`tmp${i}`);
    await del(`tmp${i}`);
  }
  const lines = readFileSync(index, 'utf8').trimEnd().split('\n');
  t.true(lines.length <= 2 * 3 + 64 + 8, `index has ${lines.length} lines`);
  t.deepEqual(await del('one'), ['10.1.0.3']);
});
