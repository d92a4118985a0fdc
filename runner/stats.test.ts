import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { cpuPercent, parseNetDev, sampleStats } from './stats.js';

const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0:    1500      10    0    0    0     0          0         0      700       7    0    0    0     0       0          0
  eth1:     500       2    0    0    0     0          0         0      300       3    0    0    0     0       0          0
`;

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'ctt-stats-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test("cgroup v2: CPU from cpu.stat, memory less inactive file pages, the limit, io.stat summed, pids; network from the init's net/dev", (t) => {
  const root = tree({
    'cg/ctnet/c1/cpu.stat': 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n',
    'cg/ctnet/c1/memory.current': '10485760\n',
    'cg/ctnet/c1/memory.stat': 'anon 8388608\nfile 2097152\ninactive_file 1048576\n',
    'cg/ctnet/c1/memory.max': '67108864\n',
    'cg/ctnet/c1/io.stat': '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n8:16 rbytes=100 wbytes=0 rios=1 wios=0\n',
    'cg/ctnet/c1/pids.current': '3\n',
    'cg/ctnet/c1/cgroup.procs': '',
    'proc/42/net/dev': netDev,
  });
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'cg', 'ctnet', 'c1');
  const s = sampleStats({ driver: 'v2', dirs: [dir], procsFiles: [join(dir, 'cgroup.procs')], parents: [] }, 42, {
    proc: join(root, 'proc'),
    hostMemory: 2 ** 33,
  });
  t.like(s, {
    cpuNs: 2_500_000_000,
    memoryUsage: 10485760 - 1048576,
    memoryLimit: 67108864,
    blockRead: 4196,
    blockWrite: 8192,
    pids: 3,
    netRx: 2000,
    netTx: 1000,
  });
  writeFileSync(join(dir, 'memory.max'), 'max\n');
  t.is(
    sampleStats({ driver: 'v2', dirs: [dir], procsFiles: [], parents: [] }, 42, { proc: join(root, 'proc'), hostMemory: 2 ** 33 })
      .memoryLimit,
    2 ** 33,
    '"max" is the host memory',
  );
});

test("cgroup v1 without cpuacct: CPU and block I/O from the processes in /proc (their own and reaped children's)", (t) => {
  const root = tree({
    'memory/c1/memory.usage_in_bytes': '5000000\n',
    'memory/c1/memory.stat': 'cache 100\ntotal_inactive_file 1000000\n',
    'memory/c1/memory.limit_in_bytes': '9223372036854771712\n',
    'pids/c1/pids.current': '2\n',
    'pids/c1/cgroup.procs': '7\n8\n',
    // pid 7 "(ctnet init)": utime 100, stime 50, cutime 20, cstime 30 ticks; pid 8: 10 + 0.
    'proc/7/stat': '7 (ctnet init) S 1 7 7 0 -1 4194560 100 0 0 0 100 50 20 30 20 0 1 0 100 0 0',
    'proc/8/stat': '8 (sh) R 7 8 7 0 -1 4194560 100 0 0 0 10 0 0 0 20 0 1 0 100 0 0',
    'proc/7/io': 'rchar: 1\nwchar: 2\nread_bytes: 4096\nwrite_bytes: 0\n',
    'proc/8/io': 'rchar: 1\nwchar: 2\nread_bytes: 0\nwrite_bytes: 12288\n',
    'proc/7/net/dev': netDev,
  });
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const rec = {
    driver: 'v1' as const,
    dirs: [join(root, 'pids', 'c1'), join(root, 'memory', 'c1')],
    procsFiles: [join(root, 'pids', 'c1', 'cgroup.procs')],
    parents: [],
  };
  const s = sampleStats(rec, 7, { proc: join(root, 'proc'), hostMemory: 2 ** 33 });
  t.like(s, {
    cpuNs: 210 * 10_000_000,
    memoryUsage: 4_000_000,
    memoryLimit: 2 ** 33,
    blockRead: 4096,
    blockWrite: 12288,
    pids: 2,
  });
});

test('CPU % is CPU time over wall time between two samples; net/dev skips lo', (t) => {
  const at = (cpuNs: number, takenNs: number) => ({
    cpuNs,
    takenNs,
    memoryUsage: 0,
    memoryLimit: 0,
    netRx: 0,
    netTx: 0,
    blockRead: 0,
    blockWrite: 0,
    pids: 0,
  });
  t.is(cpuPercent(at(0, 0), at(500_000_000, 1_000_000_000)), 50);
  t.is(cpuPercent(at(0, 0), at(1_500_000_000, 1_000_000_000)), 150, 'more than one CPU');
  t.is(cpuPercent(at(5, 10), at(5, 10)), 0);
  t.deepEqual(parseNetDev(netDev), { rx: 2000, tx: 1000 });
});
