/**
 * Benchmark: `ctnet run --rm IMAGE true` with --network none, bridge and bridge + one -p, each
 * once run by the CLI itself (CTNET_AGENT=0) and once handed to the agent (`ctnet agent`),
 * against `runc run` of the same busybox root filesystem (its default config: new namespaces, no
 * network but lo), all in one run, inside a sandbox host namespace. Prints wall times, ratios to
 * runc and the ctnet phase breakdown (from CTNET_TIMING).
 *
 *   node --import tsx bench/run.ts [--rounds 15] [--before DIR]
 * Five more show what the seccomp filter and the devices allow-list cost (left out one by one).
 * `--before DIR` adds the same six for another built checkout (e.g. main before a change; a build
 * from before the agent has `ctnet daemon` for runs), interleaved in the same run.
 * Needs root, a built tree (npm run build) and runc.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../core/index.js';
import { busyboxRootfs } from '../test-net/runner-helpers.js';
import { netnsPath, randomSuffix, repoRoot } from '../test-net/sandbox.js';
import { median, opt } from './common.js';

const rounds = Number(opt('rounds', '15'));
const before = opt('before', '');
const cleanups: (() => void | Promise<void>)[] = [];
const t = { teardown: (fn: () => void | Promise<void>) => cleanups.push(fn) };

interface Variant {
  name: string;
  argv: string[];
  timings?: string;
  /** Extra environment (CTNET_AGENT=0: the CLI runs the container itself, the agent is not asked). */
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
    for (const c of ['pids', 'memory', 'cpu', 'devices', 'unified'])
      spawnSync('rmdir', [join('/sys/fs/cgroup', c, cgroupParent)]);
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
  const env = { ...process.env, CTNET_ROOT: join(root, 'state'), CTNET_CGROUP_PARENT: cgroupParent };
  // CTNET_DAEMON=0 is what a build from before the agent reads.
  const cli = { CTNET_AGENT: '0', CTNET_DAEMON: '0' };
  const checkouts = [{ label: '', dir: repoRoot }, ...(before ? [{ label: 'before ', dir: before }] : [])];
  const variants: Variant[] = [
    { name: 'runc run (no network)', argv: [...ns, 'runc', '--root', runcRoot, 'run', '--bundle', bundle, 'bench'] },
  ];
  for (const [i, c] of checkouts.entries()) {
    const ctnet = [...ns, join(c.dir, 'bin', 'ctnet'), 'run', '--rm'];
    variants.push(
      {
        name: `${c.label}ctnet --network none`,
        argv: [...ctnet, '--network', 'none', image, 'true'],
        timings: `${i}-none`,
        env: cli,
      },
      { name: `${c.label}ctnet bridge`, argv: [...ctnet, image, 'true'], timings: `${i}-bridge`, env: cli },
      {
        name: `${c.label}ctnet bridge + -p`,
        argv: [...ctnet, '-p', '18080:80', image, 'true'],
        timings: `${i}-publish`,
        env: cli,
      },
      { name: `${c.label}agent --network none`, argv: [...ctnet, '--network', 'none', image, 'true'], timings: `${i}-a-none` },
      { name: `${c.label}agent bridge`, argv: [...ctnet, image, 'true'], timings: `${i}-a-bridge` },
      { name: `${c.label}agent bridge + -p`, argv: [...ctnet, '-p', '18080:80', image, 'true'], timings: `${i}-a-publish` },
    );
  }
  // What the seccomp filter and the devices allow-list cost: each left out, both, and devices as a BPF program.
  const none = [...ns, join(repoRoot, 'bin', 'ctnet'), 'run', '--rm', '--network', 'none'];
  const unconfined = ['--security-opt', 'seccomp=unconfined'];
  const noDevices = { CTNET_DEVICES_CGROUP: 'none' };
  variants.push(
    { name: 'ctnet none, no seccomp', argv: [...none, ...unconfined, image, 'true'], timings: 'x-seccomp', env: cli },
    {
      name: 'ctnet none, no devices cgroup',
      argv: [...none, image, 'true'],
      timings: 'x-devices',
      env: { ...cli, ...noDevices },
    },
    {
      name: 'ctnet none, neither',
      argv: [...none, ...unconfined, image, 'true'],
      timings: 'x-neither',
      env: { ...cli, ...noDevices },
    },
    {
      name: 'ctnet none, devices as BPF',
      argv: [...none, image, 'true'],
      timings: 'x-bpf',
      env: { ...cli, CTNET_DEVICES_CGROUP: 'v2' },
    },
    { name: 'agent none, no seccomp', argv: [...none, ...unconfined, image, 'true'], timings: 'x-a-seccomp' },
  );
  for (const v of variants) if (v.timings) v.timings = join(root, `${v.timings}.jsonl`);
  // Each checkout's resident process in the sandbox host, with the environment of the runs it serves: the agent,
  // or the runner daemon (`ctnet daemon`) of a build from before it. Their sockets are named per build.
  const startResident = async (dir: string): Promise<void> => {
    const hasAgent = existsSync(join(dir, 'agent', 'server.ts'));
    const child = spawn(ns[0] as string, [...ns.slice(1), join(dir, 'bin', 'ctnet'), hasAgent ? 'agent' : 'daemon'], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    cleanups.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    });
    await new Promise<void>((resolve, reject) => {
      let text = '';
      child.stderr?.on('data', (b: Buffer) => {
        text += b.toString();
        // What it logs after it started (warnings, a failed call) goes with the bench's output.
        if (text.includes('serving @')) {
          process.stderr.write(b);
          resolve();
        }
      });
      child.once('exit', (code) =>
        reject(new Error(`ctnet ${hasAgent ? 'agent' : 'daemon'} in ${dir} exited (${code}): ${text}`)),
      );
    });
  };
  for (const c of checkouts) await startResident(c.dir);
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
      `${v.name.padEnd(30)} ${median(xs).toFixed(1).padStart(7)} / ${mean(xs).toFixed(1).padStart(7)}   ×${(median(xs) / runcMedian).toFixed(2)}\n`,
    );
  }
  process.stdout.write(
    '\nctnet phase breakdown (median ms): startup = node + CLI load (agent: the C front and the hand-over); start = helper spawn → workload exec\n',
  );
  for (const v of variants) {
    if (!v.timings) continue;
    const rows = readFileSync(v.timings, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, number>);
    const phases = Object.keys(rows[0] ?? {});
    const text = phases.map((p) => `${p} ${median(rows.map((r) => r[p] ?? 0)).toFixed(1)}`).join(', ');
    process.stdout.write(`${v.name.padEnd(30)} ${text}\n`);
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
