/**
 * `ctnet stats [--no-stream] [--json] [-a] [NAME…]`: live resource use of containers, as `docker
 * stats` shows it. CPU % is the CPU time used between two samples over the time between them (100%:
 * one CPU busy); on a terminal the table is redrawn every second until Ctrl-C.
 */
import type { Command } from 'commander';
import type { ContainerRecord, StatsSample } from '../../runner/index.js';
import * as r from '../../runner/index.js';
import { printTable } from '../output.js';

type Runner = typeof r;

export interface StatsRow {
  id: string;
  name: string;
  cpuPercent: number;
  memoryUsage: number;
  memoryLimit: number;
  memoryPercent: number;
  netRx: number;
  netTx: number;
  blockRead: number;
  blockWrite: number;
  pids: number;
}

/** Docker's units: binary with 4 significant digits for memory (7.637GiB), decimal with 3 for bytes moved (1.23kB). */
function human(n: number, base: number, units: string[], digits: number): string {
  let i = 0;
  while (n >= base && i < units.length - 1) {
    n /= base;
    i++;
  }
  return `${Number(n.toPrecision(digits))}${units[i]}`;
}

export const binaryBytes = (n: number) => human(n, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB'], 4);
export const decimalBytes = (n: number) => human(n, 1000, ['B', 'kB', 'MB', 'GB', 'TB'], 3);

function rowOf(rec: ContainerRecord, before: StatsSample, after: StatsSample, r: Runner): StatsRow {
  return {
    id: rec.config.id,
    name: rec.config.name,
    cpuPercent: r.cpuPercent(before, after),
    memoryUsage: after.memoryUsage,
    memoryLimit: after.memoryLimit,
    memoryPercent: after.memoryLimit ? (after.memoryUsage / after.memoryLimit) * 100 : 0,
    netRx: after.netRx,
    netTx: after.netTx,
    blockRead: after.blockRead,
    blockWrite: after.blockWrite,
    pids: after.pids,
  };
}

function table(rows: StatsRow[]): void {
  printTable(
    ['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'BLOCK I/O', 'PIDS'],
    rows.map((s) => [
      s.id.slice(0, 12),
      s.name,
      `${s.cpuPercent.toFixed(2)}%`,
      `${binaryBytes(s.memoryUsage)} / ${binaryBytes(s.memoryLimit)}`,
      `${s.memoryPercent.toFixed(2)}%`,
      `${decimalBytes(s.netRx)} / ${decimalBytes(s.netTx)}`,
      `${decimalBytes(s.blockRead)} / ${decimalBytes(s.blockWrite)}`,
      s.pids,
    ]),
  );
}

export function register(program: Command): void {
  program
    .command('stats')
    .description("show containers' CPU, memory, network and block I/O and process counts (refreshed every second)")
    .argument('[container...]', 'containers (default: every running one)')
    .option('-a, --all', 'also list stopped containers (with zero use)')
    .option('--no-stream', 'print one sample and exit')
    .option('--json', 'print JSON (one array per sample)')
    .action(async (refs: string[], f: { all?: boolean; stream: boolean; json?: boolean }) => {
      const ctx = r.defaultContext();
      await r.reconcile(ctx);
      const named = refs.length > 0;
      const chosen = () =>
        named
          ? refs.map((ref) => r.findRecord(ctx.paths, ref))
          : r.listRecords(ctx.paths).filter((c) => f.all || c.state.status === 'running');
      const sample = (rec: ContainerRecord): StatsSample | undefined => {
        const live = rec.state.status === 'running' && r.isAlive(rec.state.pid, rec.state.pidStart) && rec.state.cgroup;
        return live ? r.sampleStats(rec.state.cgroup as NonNullable<typeof rec.state.cgroup>, rec.state.pid) : undefined;
      };
      const idle: StatsSample = {
        cpuNs: 0,
        takenNs: 0,
        memoryUsage: 0,
        memoryLimit: 0,
        netRx: 0,
        netTx: 0,
        blockRead: 0,
        blockWrite: 0,
        pids: 0,
      };
      const sampleAll = (recs: ContainerRecord[]) => {
        const out = new Map<string, StatsSample>();
        for (const rec of recs) {
          const s = sample(rec);
          if (s) out.set(rec.config.id, s);
        }
        return out;
      };
      const terminal = !!process.stdout.isTTY && f.stream && !f.json;
      // CPU % needs two samples: each output compares with the sample a second earlier.
      let previous = sampleAll(chosen());
      for (;;) {
        await new Promise((res) => setTimeout(res, 1000));
        const recs = chosen();
        const now = sampleAll(recs);
        const rows = recs.map((rec) => {
          const after = now.get(rec.config.id);
          const before = previous.get(rec.config.id);
          return after && before ? rowOf(rec, before, after, r) : rowOf(rec, idle, idle, r);
        });
        if (terminal) process.stdout.write('\x1b[2J\x1b[H');
        if (f.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
        else table(rows);
        if (!f.stream) return;
        previous = now;
      }
    });
}
