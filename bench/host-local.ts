/**
 * host-local's lease directory alone: ADD (allocateLeases) then DEL (releaseLeases) through the ipam functions the
 * plugin uses, on a temp lease directory holding N leases of other containers (reference format, written before the
 * first call). No namespace, no plugin process: this is the IPAM share of a chain's ADD+DEL.
 *
 * - in-process: many rounds in this one process through one store, as the agent runs them (what the store keeps
 *   between calls survives);
 * - fresh: each ADD and each DEL in a new Node process, as a plugin binary runs them; the figure is the time of the
 *   call inside the child (Node startup and module loading excluded; koffi is loaded before the clock starts).
 *
 * Prints medians in ms and the ratio N=max / N=0.
 * Usage: node --import tsx bench/host-local.ts [--n 0,1000] [--rounds 300] [--fresh-rounds 15] [--dir /tmp]
 * (--dir: where the temp lease directories go; /dev/shm takes the disk's journal out of the figures)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetConf } from '../core/index.js';
import { allocateLeases, DiskLeaseStore, type IpamConfig, lockFile, parseIpamConfig, releaseLeases } from '../ipam/index.js';

const args = process.argv.slice(2);
function opt(name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? (args[i + 1] as string) : dflt;
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const ms = (x: number): string => x.toFixed(3).padStart(8);
const who = { containerId: 'bench', ifname: 'eth0' };

function config(dataDir: string): IpamConfig {
  const conf: NetConf = {
    cniVersion: '1.0.0',
    name: 'benchnet',
    type: 'host-local',
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.123.0.0/16' }]] },
  };
  return parseIpamConfig(conf);
}

/** A lease directory with `n` leases of other containers, as the reference (or an earlier ctnet) left them. */
function populate(n: number, base: string): string {
  const dataDir = mkdtempSync(join(base, 'ctb-hl-'));
  const dir = join(dataDir, 'benchnet');
  mkdirSync(dir);
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `10.123.${Math.floor(i / 250) + 1}.${(i % 250) + 2}`), `other${i}\r\neth0`);
  return dataDir;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

async function child(): Promise<void> {
  const dataDir = opt('child', '');
  const command = opt('command', 'ADD');
  // Load koffi (flock) on an unrelated file first: its load time is the same whatever N is.
  (await lockFile(join(dataDir, 'warm.lock'))).release();
  const cfg = config(dataDir);
  const store = new DiskLeaseStore();
  const t0 = now();
  if (command === 'ADD') await allocateLeases(store, cfg, who, new Map());
  else await releaseLeases(store, cfg, who);
  process.stdout.write(`${now() - t0}\n`);
}

interface Figures {
  add: number[];
  del: number[];
}
const figures = (): Figures => ({ add: [], del: [] });
const summary = (f: Figures) => ({
  add: median(f.add),
  del: median(f.del),
  both: median(f.add.map((a, i) => a + (f.del[i] ?? 0))),
});

/** Every population's rounds interleaved (round i of each N, then round i + 1), so drifts of the machine hit all alike. */
async function inProcess(populations: number[], rounds: number, base: string) {
  const dirs = populations.map((n) => populate(n, base));
  const out = populations.map(figures);
  try {
    const cfgs = dirs.map(config);
    const store = new DiskLeaseStore();
    for (let i = 0; i < rounds + 20; i++) {
      for (const [k, cfg] of cfgs.entries()) {
        const t0 = now();
        await allocateLeases(store, cfg, who, new Map());
        const t1 = now();
        const released = await releaseLeases(store, cfg, who);
        const t2 = now();
        if (released.length !== 1) throw new Error(`round ${i}: DEL released ${released.length} leases`);
        if (i < 20) continue; // warm-up: JIT, the first calls' cold paths
        out[k]?.add.push(t1 - t0);
        out[k]?.del.push(t2 - t1);
      }
    }
    return out.map(summary);
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

function freshCall(dataDir: string, command: string): number {
  const r = spawnSync(process.execPath, [...process.execArgv, import.meta.filename, '--child', dataDir, '--command', command], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`child ${command} failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

function fresh(populations: number[], rounds: number, base: string) {
  const dirs = populations.map((n) => populate(n, base));
  const out = populations.map(figures);
  try {
    for (let i = 0; i < rounds + 2; i++) {
      for (const [k, d] of dirs.entries()) {
        const a = freshCall(d, 'ADD');
        const r = freshCall(d, 'DEL');
        if (i < 2) continue; // warm-up: the page cache
        out[k]?.add.push(a);
        out[k]?.del.push(r);
      }
    }
    return out.map(summary);
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const populations = opt('n', '0,1000').split(',').map(Number);
  const rounds = Number(opt('rounds', '300'));
  const freshRounds = Number(opt('fresh-rounds', '15'));
  const base = opt('dir', tmpdir());
  const report = (mode: string, rows: ReturnType<typeof summary>[]) => {
    console.log(`${mode}: medians in ms`);
    console.log('       N      ADD      DEL  ADD+DEL');
    for (const [i, r] of rows.entries())
      console.log(`${String(populations[i]).padStart(8)} ${ms(r.add)} ${ms(r.del)} ${ms(r.both)}`);
    const first = rows[0];
    const last = rows.at(-1);
    if (first && last)
      console.log(`ratio N=${populations.at(-1)} / N=${populations[0]}: ${(last.both / first.both).toFixed(2)}×`);
  };
  console.log(`lease directories under ${base}`);
  report(`in-process (${rounds} rounds)`, await inProcess(populations, rounds, base));
  if (freshRounds > 0) {
    report(`fresh process per call (${freshRounds} rounds, time inside the child)`, fresh(populations, freshRounds, base));
  }
}

await (args.includes('--child') ? child() : main());
