/**
 * What ctnet remembers of a lease directory between calls (store.ts): the view a long-lived process keeps, and the
 * owner log a new process reads. Each test has another writer change the directory behind ctnet's back, as the
 * reference plugin (or a ctnet plugin process) does, and checks that ctnet still finds, and never loses, every lease.
 * "Another writer" here writes the files the way /usr/lib/cni/host-local does: a lease file, then its cursor.
 */
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { NetConf } from '../core/index.js';
import { parseIp } from '../core/index.js';
import { parseIpamConfig } from './config.js';
import { allocateLeases, releaseLeases, toIpConfig } from './leases.js';
import { forgetLeaseDir, isLeaseDirKept, leaseDirFiles } from './store.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function setup(t: ExecutionContext, subnet = '10.1.0.0/24') {
  const dataDir = mkdtempSync(join(tmpdir(), 'ctnet-ipam-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const conf: NetConf = {
    cniVersion: '1.1.0',
    name: 'net1',
    type: 'host-local',
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]] },
  };
  const cfg = parseIpamConfig(conf);
  const dir = join(dataDir, 'net1');
  const add = async (id: string) =>
    (await allocateLeases(cfg, { containerId: id, ifname: 'eth0' }, new Map())).map((a) => toIpConfig(a).address);
  const del = async (id: string) => (await releaseLeases(cfg, { containerId: id, ifname: 'eth0' })).sort();
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
  const newProcess = () => forgetLeaseDir(dataDir, 'net1');
  const kept = () => isLeaseDirKept(dataDir, 'net1');
  return { cfg, dataDir, dir, add, del, leases, foreignAdd, foreignDel, newProcess, kept };
}

test('a process keeps a directory from its second call on; one call keeps nothing', async (t) => {
  const { add, del, kept } = setup(t);
  t.deepEqual(await add('a'), ['10.1.0.2/24']);
  t.false(kept());
  t.deepEqual(await add('b'), ['10.1.0.3/24']);
  t.true(kept());
  t.deepEqual(await del('a'), ['10.1.0.2']);
  t.deepEqual(await add('c'), ['10.1.0.4/24']);
  t.true(kept());
});

test('kept: a lease another writer made is found by DEL and refused as a duplicate by ADD', async (t) => {
  const { add, del, kept, foreignAdd, leases } = setup(t);
  await add('a');
  await add('b');
  t.true(kept());
  foreignAdd('10.1.0.50', 'x');
  await t.throwsAsync(add('x'), { message: /10\.1\.0\.50 has been allocated to x/ });
  t.deepEqual(await add('c'), ['10.1.0.51/24'], 'round-robin continues after the other writer’s cursor');
  t.deepEqual(await del('x'), ['10.1.0.50']);
  t.deepEqual(leases(), ['10.1.0.2', '10.1.0.3', '10.1.0.51']);
});

test('kept: a lease file written without any cursor change is still found', async (t) => {
  const { add, del, kept, dir } = setup(t);
  await add('a');
  await add('b');
  t.true(kept());
  writeFileSync(join(dir, '10.1.0.99'), 'x\r\neth0');
  t.deepEqual(await del('x'), ['10.1.0.99']);
});

test('kept: an address released and re-reserved by another writer for someone else, cursor text unchanged', async (t) => {
  const { add, del, kept, foreignAdd, foreignDel, leases } = setup(t);
  await add('a');
  t.deepEqual(await add('b'), ['10.1.0.3/24']);
  t.true(kept());
  foreignDel('10.1.0.3');
  foreignAdd('10.1.0.3', 'c');
  t.deepEqual(await del('c'), ['10.1.0.3']);
  t.deepEqual(leases(), ['10.1.0.2']);
  t.deepEqual(await del('b'), []);
});

test('kept: another writer replaces a lease, then restores the cursor with an identical lease', async (t) => {
  const { add, del, kept, foreignAdd, foreignDel } = setup(t);
  await add('a');
  t.deepEqual(await add('c'), ['10.1.0.3/24']);
  t.true(kept());
  foreignDel('10.1.0.2');
  foreignAdd('10.1.0.2', 'b');
  foreignDel('10.1.0.3');
  foreignAdd('10.1.0.3', 'c');
  t.deepEqual(await del('b'), ['10.1.0.2']);
  t.deepEqual(await del('a'), []);
});

test('kept: an address another writer freed is handed out again, no false "no addresses left"', async (t) => {
  // 10.1.0.0/29: .1 gateway, .7 broadcast, five addresses.
  const { add, kept, foreignDel } = setup(t, '10.1.0.0/29');
  for (const id of ['a', 'b', 'c', 'd', 'e']) await add(id);
  t.true(kept());
  await t.throwsAsync(add('f'), { message: /no IP addresses available/ });
  foreignDel('10.1.0.4');
  t.deepEqual(await add('f'), ['10.1.0.4/24'.replace('/24', '/29')]);
});

test('kept: the owner log it writes stays true for a new process after another writer changed things', async (t) => {
  const { add, del, kept, foreignAdd, foreignDel, newProcess } = setup(t);
  await add('a');
  t.deepEqual(await add('b'), ['10.1.0.3/24']);
  t.true(kept());
  // The reference moves .2 from a to x and leaves the cursor as it was (.3 after a re-ADD of b's address for b).
  foreignDel('10.1.0.2');
  foreignAdd('10.1.0.2', 'x');
  foreignDel('10.1.0.3');
  foreignAdd('10.1.0.3', 'b');
  // The long-lived process applies the change and appends to the log (its own ADD writes the cursor after it).
  t.deepEqual(await add('d'), ['10.1.0.4/24']);
  newProcess();
  t.deepEqual(await del('x'), ['10.1.0.2']);
  t.deepEqual(await del('a'), []);
});

// Serial (ava runs serial tests before the others): the overflow drops every watch of the process, which would
// make the other tests' views re-read and hide what they check.
test.serial('kept: more changes than the event queue holds make it re-read everything', async (t) => {
  const { add, del, kept, dir } = setup(t);
  await add('a');
  await add('b');
  t.true(kept());
  // Three events per file (create, modify, close): past the default queue of 16384 events.
  const max = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
  for (let i = 0; i < Math.ceil(max / 3) + 100; i++) writeFileSync(join(dir, `junk-${i}`), 'x');
  writeFileSync(join(dir, '10.1.0.77'), 'x\r\neth0');
  t.deepEqual(await del('x'), ['10.1.0.77']);
  t.deepEqual(await del('a'), ['10.1.0.2']);
  t.true(kept(), 'kept again after the re-read');
});

test('kept: a directory deleted and made anew at the same path is read anew', async (t) => {
  const { add, del, kept, dir } = setup(t);
  await add('a');
  await add('b');
  t.true(kept());
  rmSync(dir, { recursive: true });
  mkdirSync(dir);
  writeFileSync(join(dir, '10.1.0.3'), 'x\r\neth0');
  t.deepEqual(await del('b'), []);
  t.deepEqual(await add('a'), ['10.1.0.2/24'], 'a’s old lease went with the old directory');
  t.deepEqual(await del('x'), ['10.1.0.3']);
});

test('kept: a ctnet plugin process working on the same directory in between', async (t) => {
  const { add, del, kept, dataDir, dir } = setup(t);
  await add('a');
  await add('b');
  t.true(kept());
  const call = (command: string, id: string) => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'testing', 'lease-call.ts'), command, dataDir, 'net1', '10.1.0.0/24', id],
      { encoding: 'utf8' },
    );
    t.is(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as string[];
  };
  t.deepEqual(call('ADD', 'p'), ['10.1.0.4']);
  t.deepEqual(call('DEL', 'a'), ['10.1.0.2']);
  t.deepEqual(await del('p'), ['10.1.0.4']);
  t.deepEqual(await add('q'), ['10.1.0.5/24'], 'round-robin continues after the other process’s cursor');
  t.deepEqual(await del('a'), []);
  t.deepEqual(call('DEL', 'q'), ['10.1.0.5']);
  const log = readFileSync(join(dir, leaseDirFiles.ownerIndex), 'utf8');
  t.true(log.startsWith('ctnet-owners 1\n') && log.endsWith('\n'));
});

test('new process: the cursor’s own address re-reserved for someone else (same cursor text) is noticed', async (t) => {
  const { add, del, dir, foreignAdd, foreignDel, newProcess } = setup(t);
  t.deepEqual(await add('a'), ['10.1.0.2/24']);
  foreignDel('10.1.0.2');
  foreignAdd('10.1.0.2', 'b');
  // Within one clock tick (and before Linux 6.13) the cursor file's timestamps could be what the log has: play that
  // by logging its current identity, so only re-reading the file the cursor names can tell.
  const cursor = statSync(join(dir, 'last_reserved_ip.0'), { bigint: true });
  const identity = `${cursor.dev}:${cursor.ino}:${cursor.size}:${cursor.mtimeNs}:${cursor.ctimeNs}`;
  appendFileSync(join(dir, leaseDirFiles.ownerIndex), `S last_reserved_ip.0 ${identity}\n`);
  newProcess();
  t.deepEqual(await del('b'), ['10.1.0.2']);
});

test('new process: a lease replaced, then the cursor restored by an identical lease, is noticed', async (t) => {
  const { add, del, foreignAdd, foreignDel, newProcess } = setup(t);
  await add('a');
  t.deepEqual(await add('c'), ['10.1.0.3/24']);
  // Past one clock tick, as any other process's calls are (see logVouchesFor).
  await sleep(20);
  newProcess();
  foreignDel('10.1.0.2');
  foreignAdd('10.1.0.2', 'b');
  foreignDel('10.1.0.3');
  foreignAdd('10.1.0.3', 'c');
  t.deepEqual(await del('b'), ['10.1.0.2']);
  t.deepEqual(await del('a'), []);
});

test('new process: a log without cursor stamps (older ctnet) is distrusted once and rewritten with them', async (t) => {
  const { add, del, dir, newProcess } = setup(t);
  await add('a');
  newProcess();
  const file = join(dir, leaseDirFiles.ownerIndex);
  const log = readFileSync(file, 'utf8');
  t.regex(log, /^S last_reserved_ip\.0 /m);
  // What an older ctnet leaves: no S records, and (here) an owner that is no longer true.
  writeFileSync(file, log.replace(/^S .*\n/gm, '').replace('"a\\r\\neth0"', '"zz\\r\\neth0"'));
  t.deepEqual(await del('a'), ['10.1.0.2']);
  t.regex(readFileSync(file, 'utf8'), /^S last_reserved_ip\.0 /m);
});
