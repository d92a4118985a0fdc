import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parseCgroupLayout } from './detect.js';
import { parseCpus, parseMemory, parsePidsLimit } from './limits.js';
import { oomKillCount } from './ops.js';
import { NoCgroupManager, V1CgroupManager } from './v1.js';
import { V2CgroupManager } from './v2.js';

/** A directory shaped like a cgroup2 root: the files the kernel would provide. */
function fakeV2Root(t: { teardown(fn: () => void): void }, controllers = 'cpuset cpu io memory pids'): string {
  const root = mkdtempSync(join(tmpdir(), 'ctnet-cg2-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'cgroup.controllers'), `${controllers}\n`);
  writeFileSync(join(root, 'cgroup.subtree_control'), '\n');
  return root;
}

/** The kernel creates these files in a new cgroup; a temp dir needs them made by hand. */
function kernelFiles(dir: string, controllers: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cgroup.controllers'), controllers);
  writeFileSync(join(dir, 'cgroup.subtree_control'), '');
  for (const f of ['memory.max', 'memory.swap.max', 'cpu.max', 'pids.max', 'cgroup.procs', 'memory.events'])
    writeFileSync(join(dir, f), '');
}

test('v2: limits are written as crun converts them, and controllers are enabled down the path', (t) => {
  const root = fakeV2Root(t);
  kernelFiles(join(root, 'ctnet'), 'cpu memory pids');
  // The kernel adds a leaf's interface files on mkdir; in a temp dir a subclass adds them.
  class Fake extends V2CgroupManager {
    override applyLimits(leaf: string, limits: Parameters<V2CgroupManager['applyLimits']>[1]): void {
      kernelFiles(leaf, '');
      super.applyLimits(leaf, limits);
    }
  }
  const rec = new Fake(root).create('ctnet', 'c3', { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pidsLimit: 50 });
  const leaf = join(root, 'ctnet', 'c3');
  t.deepEqual(rec.dirs, [leaf]);
  t.deepEqual(rec.procsFiles, [join(leaf, 'cgroup.procs')]);
  t.is(rec.oomFile, join(leaf, 'memory.events'));
  t.deepEqual(rec.parents, [join(root, 'ctnet')]);
  t.is(readFileSync(join(leaf, 'memory.max'), 'utf8'), String(64 * 1024 * 1024));
  t.is(readFileSync(join(leaf, 'memory.swap.max'), 'utf8'), '0');
  t.is(readFileSync(join(leaf, 'cpu.max'), 'utf8'), '50000 100000');
  t.is(readFileSync(join(leaf, 'pids.max'), 'utf8'), '50');
  t.is(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8'), '+cpu +memory +pids');
  t.is(readFileSync(join(root, 'ctnet', 'cgroup.subtree_control'), 'utf8'), '+cpu +memory +pids');
});

test('v2: no limits writes no limit files; a missing controller is a clear error', (t) => {
  const root = fakeV2Root(t, 'memory pids');
  class Fake extends V2CgroupManager {
    override applyLimits(leaf: string, limits: Parameters<V2CgroupManager['applyLimits']>[1]): void {
      kernelFiles(leaf, '');
      rmSync(join(leaf, 'cpu.max'));
      super.applyLimits(leaf, limits);
    }
  }
  const rec = new Fake(root).create('p', 'quiet', {});
  t.is(readFileSync(join(rec.dirs[0] as string, 'memory.max'), 'utf8'), '');
  t.is(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8'), '+memory +pids');
  const err = t.throws(() => new Fake(root).create('p', 'cpu', { cpus: 1 })) as { code?: number; message: string };
  t.regex(err.message, /cpu\.max/);
});

test('OOM kills are read from memory.events (v2) and memory.oom_control (v1)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctnet-oom-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n');
  writeFileSync(join(dir, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n');
  const rec = { driver: 'v2' as const, dirs: [], procsFiles: [], parents: [] };
  t.is(oomKillCount({ ...rec, oomFile: join(dir, 'memory.events') }), 1);
  t.is(oomKillCount({ ...rec, oomFile: join(dir, 'memory.oom_control') }), 0);
  t.is(oomKillCount({ ...rec, oomFile: join(dir, 'missing') }), 0);
});

const hybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;

test('detection: hybrid hosts use v1 controllers, pure v2 hosts v2, nothing mounted none', (t) => {
  const h = parseCgroupLayout(hybrid);
  t.is(h.driver, 'v1');
  t.is(h.controllers.memory, '/sys/fs/cgroup/memory');
  t.is(h.controllers.pids, '/sys/fs/cgroup/pids');
  const v2 = parseCgroupLayout('30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate');
  t.deepEqual(v2, { driver: 'v2', root: '/sys/fs/cgroup', controllers: {} });
  t.is(parseCgroupLayout('27 1 254:0 / / rw - ext4 /dev/vda rw').driver, 'none');
});

test('limits parse Docker units and refuse impossible values', (t) => {
  t.is(parseMemory('64m'), 64 * 1024 * 1024);
  t.is(parseMemory('1g'), 1024 ** 3);
  t.is(parseMemory('10485760'), 10485760);
  t.throws(() => parseMemory('4m'), { message: /minimum allowed is 6MB/ });
  t.throws(() => parseMemory('lots'));
  t.is(parseCpus('0.5', 2), 0.5);
  t.throws(() => parseCpus('3', 2), { message: /from 0.01 to 2/ });
  t.throws(() => parseCpus('0', 2));
  t.is(parsePidsLimit('100'), 100);
  t.is(parsePidsLimit('-1'), undefined);
  t.throws(() => parsePidsLimit('x'));
});

test('without cgroups a limit cannot be honoured: error; no limits: fine', (t) => {
  const none = new NoCgroupManager();
  t.deepEqual(none.create('ctnet', 'x', {}).dirs, []);
  t.throws(() => none.create('ctnet', 'x', { pidsLimit: 5 }), { message: /no usable cgroups/ });
});

test('the devices allow-list: v1 devices controller, or the cgroup2 tree (asked for, or no devices controller), or v2', (t) => {
  const c = { pids: '/cg/pids', memory: '/cg/memory', cpu: '/cg/cpu', devices: '/cg/devices' };
  const v1 = new V1CgroupManager(c, { unified: '/cg/unified' }).describe('p', 'n');
  t.deepEqual(v1.devices, { kind: 'v1', dir: '/cg/devices/p/n' });
  t.true(v1.procsFiles.includes('/cg/devices/p/n/cgroup.procs'));
  t.false(v1.dirs.some((d) => d.startsWith('/cg/unified')));
  const bpf = new V1CgroupManager(c, { unified: '/cg/unified', devices: 'v2' }).describe('p', 'n');
  t.deepEqual(bpf.devices, { kind: 'bpf', dir: '/cg/unified/p/n' });
  t.true(bpf.procsFiles.includes('/cg/unified/p/n/cgroup.procs'));
  t.true(bpf.parents.includes('/cg/unified/p'));
  t.false(bpf.dirs.some((d) => d.startsWith('/cg/devices')));
  const { devices: _, ...noDevices } = c;
  t.deepEqual(new V1CgroupManager(noDevices, { unified: '/cg/unified' }).describe('p', 'n').devices, {
    kind: 'bpf',
    dir: '/cg/unified/p/n',
  });
  t.is(new V1CgroupManager(noDevices).describe('p', 'n').devices, undefined);
  t.is(new V1CgroupManager(c, { unified: '/cg/unified', devices: 'none' }).describe('p', 'n').devices, undefined);
  t.is(new V2CgroupManager('/cg2', { devices: 'none' }).describe('p', 'n').devices, undefined);
  t.deepEqual(new V2CgroupManager('/cg2').describe('p', 'n').devices, { kind: 'bpf', dir: '/cg2/p/n' });
  t.deepEqual(parseCgroupLayout(hybrid).unified, '/sys/fs/cgroup/unified');
});
