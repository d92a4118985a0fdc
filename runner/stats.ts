/**
 * Resource usage of running containers, as `docker stats` shows it: CPU time, memory usage and
 * limit, network bytes of the container's own interfaces, block I/O and the number of processes.
 * From the container's cgroup (v2: cpu.stat, memory.current/max/stat, io.stat, pids.current; v1:
 * memory.usage_in_bytes/limit_in_bytes/stat, pids.current, and cpuacct/blkio when the container has
 * them), else from /proc of its processes (CPU and block I/O on a v1 host whose cpu controller has
 * no usage counter). Network bytes come from /proc/<init>/net/dev, which is the container's
 * namespace. Parsers are pure and unit-tested against a temp-dir cgroup root.
 */
import { existsSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { type CgroupRecord, cgroupPids } from './cgroups/index.js';

export interface StatsSample {
  /** Cumulative CPU time of the container's processes, in nanoseconds. */
  cpuNs: number;
  /** When the sample was taken (process.hrtime, ns). */
  takenNs: number;
  memoryUsage: number;
  memoryLimit: number;
  netRx: number;
  netTx: number;
  blockRead: number;
  blockWrite: number;
  pids: number;
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** `key value` lines (cpu.stat, memory.stat, /proc/<pid>/io) as numbers. */
export function parseKeyValues(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.split(/:?\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** v2 io.stat: `MAJ:MIN rbytes=… wbytes=… …` per device, summed. */
export function parseIoStat(text: string | undefined): { read: number; write: number } {
  let readBytes = 0;
  let writeBytes = 0;
  for (const m of (text ?? '').matchAll(/\brbytes=(\d+)|\bwbytes=(\d+)/g)) {
    if (m[1]) readBytes += Number(m[1]);
    if (m[2]) writeBytes += Number(m[2]);
  }
  return { read: readBytes, write: writeBytes };
}

/** v1 blkio.throttle.io_service_bytes: `MAJ:MIN Read N` / `MAJ:MIN Write N` lines, summed. */
export function parseBlkioServiceBytes(text: string | undefined): { read: number; write: number } {
  let readBytes = 0;
  let writeBytes = 0;
  for (const m of (text ?? '').matchAll(/^\S+ (Read|Write) (\d+)$/gm)) {
    if (m[1] === 'Read') readBytes += Number(m[2]);
    else writeBytes += Number(m[2]);
  }
  return { read: readBytes, write: writeBytes };
}

/** /proc/<pid>/net/dev: received and sent bytes of every interface but lo. */
export function parseNetDev(text: string | undefined): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const line of (text ?? '').split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest || name?.trim() === 'lo') continue;
    const f = rest.trim().split(/\s+/).map(Number);
    rx += f[0] ?? 0;
    tx += f[8] ?? 0;
  }
  return { rx, tx };
}

/** A limit file's value; "max" or v1's "no limit" (a huge number) is the host's memory. */
function limitOf(text: string | undefined, host: number): number {
  const v = text?.trim();
  if (!v || v === 'max') return host;
  const n = Number(v);
  return Number.isFinite(n) && n < host ? n : host;
}

const clockTicksNs = 1e9 / 100; // USER_HZ is 100 on Linux

/** CPU time of `pids` (with their reaped children's) from /proc, in ns. */
function procCpuNs(pids: number[], proc = '/proc'): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = read(join(proc, String(pid), 'stat'));
    if (!stat) continue;
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return ticks * clockTicksNs;
}

function procBlockIo(pids: number[], proc = '/proc'): { read: number; write: number } {
  let r = 0;
  let w = 0;
  for (const pid of pids) {
    const io = parseKeyValues(read(join(proc, String(pid), 'io')));
    r += io.read_bytes ?? 0;
    w += io.write_bytes ?? 0;
  }
  return { read: r, write: w };
}

/** The directory of `rec` that has `file` (v1 has one per controller). */
function dirWith(rec: CgroupRecord, file: string): string | undefined {
  return rec.dirs.find((d) => existsSync(join(d, file)));
}

export function sampleStats(
  rec: CgroupRecord,
  initPid: number | undefined,
  opts: { proc?: string; hostMemory?: number } = {},
): StatsSample {
  const proc = opts.proc ?? '/proc';
  const host = opts.hostMemory ?? totalmem();
  const pidsDir = dirWith(rec, 'pids.current');
  const livePids = rec.driver === 'none' ? (initPid ? [initPid] : []) : cgroupPids(rec);
  const net = initPid ? parseNetDev(read(join(proc, String(initPid), 'net', 'dev'))) : { rx: 0, tx: 0 };
  const sample: StatsSample = {
    cpuNs: 0,
    takenNs: Number(process.hrtime.bigint()),
    memoryUsage: 0,
    memoryLimit: host,
    netRx: net.rx,
    netTx: net.tx,
    blockRead: 0,
    blockWrite: 0,
    pids: pidsDir ? Number(read(join(pidsDir, 'pids.current')) ?? 0) : livePids.length,
  };
  if (rec.driver === 'v2') {
    const dir = rec.dirs[0] as string;
    sample.cpuNs = (parseKeyValues(read(join(dir, 'cpu.stat'))).usage_usec ?? 0) * 1000;
    const stat = parseKeyValues(read(join(dir, 'memory.stat')));
    // As Docker: the page cache the kernel can drop at once does not count as use.
    sample.memoryUsage = Math.max(0, Number(read(join(dir, 'memory.current')) ?? 0) - (stat.inactive_file ?? 0));
    sample.memoryLimit = limitOf(read(join(dir, 'memory.max')), host);
    const io = parseIoStat(read(join(dir, 'io.stat')));
    sample.blockRead = io.read;
    sample.blockWrite = io.write;
    return sample;
  }
  const mem = dirWith(rec, 'memory.usage_in_bytes');
  if (mem) {
    const stat = parseKeyValues(read(join(mem, 'memory.stat')));
    sample.memoryUsage = Math.max(0, Number(read(join(mem, 'memory.usage_in_bytes')) ?? 0) - (stat.total_inactive_file ?? 0));
    sample.memoryLimit = limitOf(read(join(mem, 'memory.limit_in_bytes')), host);
  }
  const cpuacct = dirWith(rec, 'cpuacct.usage');
  sample.cpuNs = cpuacct ? Number(read(join(cpuacct, 'cpuacct.usage')) ?? 0) : procCpuNs(livePids, proc);
  const blkio = dirWith(rec, 'blkio.throttle.io_service_bytes');
  const io = blkio ? parseBlkioServiceBytes(read(join(blkio, 'blkio.throttle.io_service_bytes'))) : procBlockIo(livePids, proc);
  sample.blockRead = io.read;
  sample.blockWrite = io.write;
  if (!mem)
    sample.memoryUsage = livePids.reduce(
      (sum, pid) => sum + (parseKeyValues(read(join(proc, String(pid), 'status'))).VmRSS ?? 0) * 1024,
      0,
    );
  return sample;
}

/** CPU use between two samples as Docker shows it: 100% is one CPU busy for the whole interval. */
export function cpuPercent(before: StatsSample, after: StatsSample): number {
  const wall = after.takenNs - before.takenNs;
  if (wall <= 0) return 0;
  return Math.max(0, ((after.cpuNs - before.cpuNs) / wall) * 100);
}
