/**
 * ADD then DEL latency of bridge + host-local (ipMasq on), ours against the reference plugins
 * in /usr/lib/cni, measured in the same run, with N = 0 and N = 200 containers already attached.
 * DEL carries the ADD's result as prevResult, as runtimes built on libcni send it.
 * Also prints how much of our time is process startup (a VERSION call: node + bundle load).
 *
 * Everything runs in sandbox namespaces named ctb-…, removed at the end (also on Ctrl-C).
 * Usage: node --import tsx bench/cni-add-del.ts [--rounds 15] [--n 0,200] [--backend iptables|nftables (ours)]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callPlugin, cleanup, f, median, netns, opt, p90, repo, tempDir } from './common.js';

const rounds = Number(opt('rounds', '15'));
const populations = opt('n', '0,200').split(',').map(Number);
const ourBackend = opt('backend', '');

interface Impl {
  label: string;
  dir: string;
  extra: Record<string, unknown>;
}
const impls: Impl[] = [
  { label: 'ctnet', dir: join(repo, 'bin', 'cni'), extra: ourBackend ? { ipMasqBackend: ourBackend } : {} },
  { label: 'reference', dir: '/usr/lib/cni', extra: {} },
];

function conf(impl: Impl, dataDir: string) {
  return JSON.stringify({
    ...impl.extra,
    cniVersion: '1.0.0',
    name: 'benchnet',
    type: 'bridge',
    bridge: 'ctb0',
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.123.0.0/16' }]], dataDir },
  });
}

/** The DEL config a runtime sends (libcni, containerd, CRI-O): the ADD's result as prevResult. */
function withPrevResult(stdin: string, addResult: string): string {
  return JSON.stringify({ ...JSON.parse(stdin), prevResult: JSON.parse(addResult) });
}

let lastStdout = '';
function invoke(impl: Impl, host: string, command: string, ctr: string, stdin: string): number {
  const r = callPlugin(impl.dir, 'bridge', host, command, ctr, stdin);
  lastStdout = r.stdout;
  return r.ms;
}

function timeOnly(argv: string[], input = ''): number {
  const t0 = process.hrtime.bigint();
  spawnSync(argv[0] as string, argv.slice(1), { input, env: { PATH: process.env.PATH, CNI_COMMAND: 'VERSION' } });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

interface Row {
  impl: string;
  n: number;
  add: number[];
  del: number[];
}

try {
  const rows: Row[] = [];
  for (const n of populations) {
    for (const impl of impls) {
      const host = netns('h');
      const dataDir = mkdtempSync(join(tmpdir(), 'ctb-data-'));
      tempDir(dataDir);
      const stdin = conf(impl, dataDir);
      for (let i = 0; i < n; i++) invoke(impl, host, 'ADD', netns(`p${i}`), stdin);
      const row: Row = { impl: impl.label, n, add: [], del: [] };
      for (let r = 0; r < rounds + 2; r++) {
        const ctr = netns(`r${r}`);
        const add = invoke(impl, host, 'ADD', ctr, stdin);
        const del = invoke(impl, host, 'DEL', ctr, withPrevResult(stdin, lastStdout));
        if (r >= 2) {
          row.add.push(add);
          row.del.push(del);
        }
      }
      rows.push(row);
      cleanup();
    }
  }
  const nsenter = median(Array.from({ length: 10 }, () => timeOnly(['nsenter', '--net=/proc/self/ns/net', 'true'])));
  const startup = median(
    Array.from({ length: 10 }, () => timeOnly([join(repo, 'bin', 'cni', 'bridge')], '{"cniVersion":"1.0.0"}')),
  );
  const refStartup = median(Array.from({ length: 10 }, () => timeOnly(['/usr/lib/cni/bridge'], '{"cniVersion":"1.0.0"}')));

  console.log(`bridge + host-local, ipMasq on, ${rounds} rounds each (ms, wall clock incl. nsenter ≈ ${nsenter.toFixed(1)} ms)`);
  console.log('impl        N     ADD med  ADD p90  DEL med  DEL p90  ADD+DEL');
  for (const r of rows) {
    console.log(
      `${r.impl.padEnd(10)} ${String(r.n).padStart(4)}  ${f(median(r.add))}  ${f(p90(r.add))}  ${f(median(r.del))}  ${f(p90(r.del))}  ${f(median(r.add) + median(r.del))}`,
    );
  }
  for (const n of populations) {
    const ours = rows.find((r) => r.impl === 'ctnet' && r.n === n);
    const ref = rows.find((r) => r.impl === 'reference' && r.n === n);
    if (!ours || !ref) continue;
    const ratio = (median(ours.add) + median(ours.del)) / (median(ref.add) + median(ref.del));
    console.log(
      `ratio ctnet/reference at N=${n}: ADD ${(median(ours.add) / median(ref.add)).toFixed(2)}×, DEL ${(median(ours.del) / median(ref.del)).toFixed(2)}×, ADD+DEL ${ratio.toFixed(2)}×`,
    );
  }
  const ours0 = rows.find((r) => r.impl === 'ctnet' && r.n === populations[0]);
  if (ours0) {
    const share = (startup / median(ours0.add)) * 100;
    console.log(
      `process startup (VERSION call): ctnet ${startup.toFixed(1)} ms, reference ${refStartup.toFixed(1)} ms; startup is ${share.toFixed(0)}% of our ADD at N=${populations[0]}`,
    );
  }
} finally {
  cleanup();
}
