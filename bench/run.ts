/**
 * Benchmark: `ctnet run --rm IMAGE true` with --network none, bridge and bridge + one -p, each
 * once run by the CLI itself (CTNET_DAEMON=0) and once handed to a runner daemon (`ctnet daemon`),
 * against `runc run` of the same busybox root filesystem (its default config: new namespaces, no
 * network but lo), all in one run, inside a sandbox host namespace. Prints wall times, ratios to
 * runc and the ctnet phase breakdown (from CTNET_TIMING).
 *
 *   node --import tsx bench/run.ts [--rounds 15]
 * Needs root, a built tree (npm run build) and runc.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../core/index.js';
import { busyboxRootfs } from '../test-net/runner-helpers.js';
import { netnsPath, randomSuffix, repoRoot } from '../test-net/sandbox.js';
import { median, opt } from './common.js';

const rounds = Number(opt('rounds', '15'));
const cleanups: (() => void | Promise<void>)[] = [];
const t = { teardown: (fn: () => void | Promise<void>) => cleanups.push(fn) };

interface Variant {
  name: string;
  argv: string[];
  timings?: string;
  /** Extra environment (CTNET_DAEMON=0: the CLI runs the container itself, the daemon is not asked). */
  env?: Record<string, string>;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

async function main(): Promise<void> {
  const host = `ctt-${randomSuffix()}-bench`;
  await run('ip', ['netns', 'add', host]);
  cleanups.push(() => void spawnSync('ip', ['netns', 'del', host]));
  await run('ip', ['-n', host, 'link', 'set', 'lo', 'up']);
  const root = mkdtempSync(join(tmpdir(), 'ctt-bench-root-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const cgroupParent = `ctt-bench-${randomSuffix()}`;
  cleanups.push(() => {
    for (const c of ['pids', 'memory', 'cpu']) spawnSync('rmdir', [join('/sys/fs/cgroup', c, cgroupParent)]);
  });
  const image = await busyboxRootfs(t);

  // runc's bundle: the same root filesystem, runc's default spec with `true` and no terminal.
  const bundle = mkdtempSync(join(tmpdir(), 'ctt-bench-runc-'));
  cleanups.push(() => rmSync(bundle, { recursive: true, force: true }));
  await run('runc', ['spec'], { cwd: bundle });
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.root = { path: image, readonly: true };
  spec.process.args = ['true'];
  spec.process.terminal = false;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  const runcRoot = join(bundle, 'state');

  const ns = ['nsenter', `--net=${netnsPath(host)}`];
  const ctnet = [...ns, join(repoRoot, 'bin', 'ctnet'), 'run', '--rm'];
  const env = { ...process.env, CTNET_ROOT: join(root, 'state'), CTNET_CGROUP_PARENT: cgroupParent };
  const cli = { CTNET_DAEMON: '0' };
  const variants: Variant[] = [
    { name: 'runc run (no network)', argv: [...ns, 'runc', '--root', runcRoot, 'run', '--bundle', bundle, 'bench'] },
    { name: 'ctnet --network none', argv: [...ctnet, '--network', 'none', image, 'true'], timings: 'none', env: cli },
    { name: 'ctnet bridge', argv: [...ctnet, image, 'true'], timings: 'bridge', env: cli },
    { name: 'ctnet bridge + -p', argv: [...ctnet, '-p', '18080:80', image, 'true'], timings: 'publish', env: cli },
    { name: 'daemon --network none', argv: [...ctnet, '--network', 'none', image, 'true'], timings: 'd-none' },
    { name: 'daemon bridge', argv: [...ctnet, image, 'true'], timings: 'd-bridge' },
    { name: 'daemon bridge + -p', argv: [...ctnet, '-p', '18080:80', image, 'true'], timings: 'd-publish' },
  ].map((v) => ({ ...v, timings: v.timings && join(root, `${v.timings}.jsonl`) }));
  // The runner daemon (`ctnet daemon`) in the sandbox host, with the environment of the runs it serves.
  const daemon = spawn(ns[0] as string, [...ns.slice(1), join(repoRoot, 'bin', 'ctnet'), 'daemon'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  cleanups.push(async () => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) return;
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  });
  await new Promise<void>((resolve, reject) => {
    let text = '';
    daemon.stderr?.on('data', (b: Buffer) => {
      text += b.toString();
      if (text.includes('serving @')) resolve();
      // What the daemon logs after it started (warnings, a failed call) goes with the bench's output.
      if (text.includes('serving @')) process.stderr.write(b);
    });
    daemon.once('exit', (code) => reject(new Error(`ctnet daemon exited (${code}): ${text}`)));
  });
  const results = new Map<string, number[]>();
  for (const v of variants) results.set(v.name, []);
  // Interleaved, after one warm-up round, so load changes on the machine hit every variant alike.
  for (let i = -1; i < rounds; i++) {
    for (const v of variants) {
      const start = process.hrtime.bigint();
      const r = spawnSync(v.argv[0] as string, v.argv.slice(1), {
        env: { ...env, ...v.env, ...(v.timings && i >= 0 ? { CTNET_TIMING: v.timings } : {}) },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (r.status !== 0) throw new Error(`${v.name} failed (${r.status}): ${r.stderr}`);
      if (i >= 0) results.get(v.name)?.push(ms);
    }
  }
  const runcMedian = median(results.get(variants[0]?.name as string) ?? []);
  process.stdout.write(`\n${rounds} runs each (median / mean ms, ratio of medians to runc)\n`);
  for (const v of variants) {
    const xs = results.get(v.name) ?? [];
    process.stdout.write(
      `${v.name.padEnd(24)} ${median(xs).toFixed(1).padStart(7)} / ${mean(xs).toFixed(1).padStart(7)}   ×${(median(xs) / runcMedian).toFixed(2)}\n`,
    );
  }
  process.stdout.write(
    '\nctnet phase breakdown (median ms): startup = node + CLI load (daemon: the C front and the hand-over); start = helper spawn → workload exec\n',
  );
  for (const v of variants) {
    if (!v.timings) continue;
    const rows = readFileSync(v.timings, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, number>);
    const phases = Object.keys(rows[0] ?? {});
    const text = phases.map((p) => `${p} ${median(rows.map((r) => r[p] ?? 0)).toFixed(1)}`).join(', ');
    process.stdout.write(`${v.name.padEnd(24)} ${text}\n`);
  }
}

main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
