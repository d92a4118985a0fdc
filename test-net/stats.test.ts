/**
 * `ctnet stats` on real containers in a sandbox host namespace (cgroups of this hybrid host: v1
 * memory and pids, CPU from /proc): a busy container's CPU %, its memory limit, the bytes of a ping
 * on its interface and its process count; one sample with --no-stream; the table redrawn in place
 * on a terminal (tmux).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import test from 'ava';
import { busyboxRootfs, ctnet, ensureInitHelper, inspect, runnerEnv } from './runner-helpers.js';
import { createSandbox, netnsPath, nsRun, repoRoot } from './sandbox.js';

test.before(ensureInitHelper);

interface Row {
  name: string;
  cpuPercent: number;
  memoryUsage: number;
  memoryLimit: number;
  netRx: number;
  netTx: number;
  blockRead: number;
  blockWrite: number;
  pids: number;
}

test('stats: CPU %, memory usage and limit, network and block I/O, PIDs; --no-stream --json, a table, and a refreshing terminal', async (t) => {
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  await ctnet(renv, ['run', '-d', '--name', 'busy', '-m', '64m', image, 'sh', '-c', 'while :; do :; done']);
  await ctnet(renv, ['run', '-d', '--name', 'idle', '--network', 'none', image, 'sleep', '600']);
  const ip = (await inspect(renv, 'busy')).NetworkSettings.IPAddress;
  await nsRun(sb.host, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', ip]);

  const r = await ctnet(renv, ['stats', '--no-stream', '--json', 'busy', 'idle']);
  const [busy, idle] = JSON.parse(r.stdout) as Row[];
  t.is(busy?.name, 'busy');
  t.true((busy?.cpuPercent ?? 0) > 10, `a busy loop uses CPU: ${busy?.cpuPercent}`);
  t.true((idle?.cpuPercent ?? 100) < 5, `sleep does not: ${idle?.cpuPercent}`);
  t.is(busy?.memoryLimit, 64 * 1024 * 1024, 'the -m limit');
  t.true((busy?.memoryUsage ?? 0) > 0 && (busy?.memoryUsage ?? 0) < 64 * 1024 * 1024);
  t.true(
    (busy?.netRx ?? 0) >= 3 * 98 && (busy?.netTx ?? 0) >= 3 * 98,
    `the pings in and out of its interface: ${busy?.netRx}/${busy?.netTx}`,
  );
  t.is(idle?.netRx, 0, 'none mode: only lo, which does not count');
  t.is(busy?.pids, 2, 'init and sh');
  t.true(Number.isInteger(busy?.blockRead) && Number.isInteger(busy?.blockWrite));

  const plain = await ctnet(renv, ['stats', '--no-stream']);
  t.regex(plain.stdout, /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/m);
  t.regex(
    plain.stdout,
    /^[0-9a-f]{12}\s+busy\s+[\d.]+%\s+[\d.]+[KM]iB \/ 64MiB\s+[\d.]+%\s+[\d.]+k?B \/ [\d.]+k?B\s+\S+ \/ \S+\s+2$/m,
  );
  const missing = await ctnet(renv, ['stats', '--no-stream', 'nope'], { allowFailure: true });
  t.regex(missing.stderr, /no such container: nope/);

  // On a terminal: redrawn in place every second, one table on the screen.
  const session = `ctt-stats-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
  const envArgs = Object.entries(renv.env)
    .filter(([k]) => k.startsWith('CTNET_') || k === 'NETCONFPATH' || k === 'PATH')
    .map(([k, v]) => `${k}=${v}`);
  tmux(
    'new-session',
    '-d',
    '-s',
    session,
    '-x',
    '160',
    '-y',
    '12',
    'env',
    ...envArgs,
    'nsenter',
    `--net=${netnsPath(sb.host)}`,
    process.execPath,
    '--import',
    'tsx',
    join(repoRoot, 'cli', 'main.ts'),
    'stats',
  );
  t.teardown(() => {
    spawnSync('tmux', ['kill-session', '-t', session], { stdio: 'ignore' });
  });
  const screens: string[] = [];
  for (let i = 0; i < 100 && screens.length < 3; i++) {
    await new Promise((res) => setTimeout(res, 200));
    const s = tmux('capture-pane', '-p', '-t', session);
    if (/busy/.test(s) && /idle/.test(s) && s !== screens.at(-1)) screens.push(s);
  }
  t.true(screens.length >= 2, 'the screen changed between samples');
  for (const s of screens) t.is((s.match(/CONTAINER ID/g) ?? []).length, 1, `one table on the screen:\n${s}`);
  tmux('send-keys', '-t', session, 'C-c');
  await ctnet(renv, ['rm', '-f', 'busy', 'idle']);
});
