/**
 * Torture for the runner's state root: full (ENOSPC, a small tmpfs) and read-only (EROFS), in a mount namespace of
 * the test's own (a holder made with `unshare -m`, slave propagation; every command enters it with nsenter), and a
 * container record filled with garbage. A failed `ctnet run` must exit 125 with one readable line, leave nothing of
 * itself (record, name, netns file, mount, veth, lease) and nothing of another container lost; a damaged record
 * must not crash the commands that read the state.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { run } from '../core/index.js';
import { busyboxRootfs, ensureInitHelper, runnerEnv } from './runner-helpers.js';
import { createSandbox, netnsPath, nsRun, repoRoot } from './sandbox.js';

const front = join(repoRoot, 'bin', 'ctnet');

test.before(() => {
  ensureInitHelper();
});

async function mountHolder(t: ExecutionContext): Promise<number> {
  const holder = spawn('unshare', ['-m', '--propagation', 'slave', 'sleep', '600'], { stdio: 'ignore' });
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  const pid = holder.pid as number;
  const own = readlinkSync('/proc/self/ns/mnt');
  for (let i = 0; i < 100; i++) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/mnt`) !== own) break;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return pid;
}

test('the state root full, then read-only: run fails cleanly with nothing of it left and the other container kept; a garbage record crashes nothing', async (t) => {
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  const holder = await mountHolder(t);
  const inMounts = (cmd: string, args: string[]) =>
    run('nsenter', [`--mount=/proc/${holder}/ns/mnt`, cmd, ...args], { allowFailure: true });
  const ctnet = (args: string[]) =>
    run('nsenter', [`--mount=/proc/${holder}/ns/mnt`, `--net=${netnsPath(sb.host)}`, front, ...args], {
      env: { ...renv.env, CTNET_DAEMON: '0' },
      allowFailure: true,
      timeoutMs: 60_000,
    });
  // The holder's view of the state root (the test's own view is the empty directory under the tmpfs).
  const view = (sub: string) => {
    try {
      return readdirSync(join(`/proc/${holder}/root`, renv.root, sub)).filter((f) => !f.startsWith('.'));
    } catch {
      return [];
    }
  };
  const mounts = () =>
    readFileSync(`/proc/${holder}/mountinfo`, 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(`${renv.root}/`));
  const veths = async () =>
    (await nsRun(sb.host, 'ip', ['-o', 'link', 'show'])).stdout.split('\n').filter((l) => / veth/.test(l)).length;
  const state = async () => ({
    containers: view('containers').length,
    names: view('names'),
    netns: view('netns').length,
    mounts: new Set(mounts()).size,
    veths: await veths(),
    leases: view('ipam/ctnet').filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).length,
  });
  const clean = (r: { code: number; stderr: string }, what: string) => {
    t.is(r.code, 125, `${what}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    t.is(lines.length, 1, `${what}: one line: ${r.stderr}`);
    t.notRegex(r.stderr, /\bat .*\.(ts|js|cjs):\d+|TypeError|RangeError/, `${what}: no crash`);
    t.log(`${what}: ${r.stderr.trim()}`);
  };

  const m = await inMounts('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tstate', renv.root]);
  t.is(m.code, 0, m.stderr);
  const a = await ctnet(['run', '-d', '--name', 'a', '-p', '18300:80', image, 'sleep', '600']);
  t.is(a.code, 0, a.stderr);
  const withA = await state();
  t.deepEqual(withA.names, ['a']);

  // ENOSPC.
  await inMounts('sh', ['-c', `dd if=/dev/zero of=${renv.root}/filler bs=64k 2>/dev/null; sync`]);
  const full = await ctnet(['run', '-d', '--name', 'b', '-p', '18301:80', image, 'sleep', '600']);
  clean(full, 'run on a full state root');
  t.regex(full.stderr, /ENOSPC|no space/);
  t.deepEqual(await state(), withA, 'nothing of b, all of a');

  // EROFS: a read-only bind of the state root over itself (recursive, so a's netns file and root stay visible).
  await inMounts('rm', ['-f', `${renv.root}/filler`]);
  const ro = await inMounts('sh', ['-c', `mount --rbind ${renv.root} ${renv.root} && mount -o remount,ro,bind ${renv.root}`]);
  t.is(ro.code, 0, ro.stderr);
  const rofs = await ctnet(['run', '-d', '--name', 'b', image, 'sleep', '600']);
  clean(rofs, 'run on a read-only state root');
  t.regex(rofs.stderr, /EROFS|read-only/);
  const ps = await ctnet(['ps', '-a', '--json']);
  t.is(ps.code, 0, ps.stderr);
  t.deepEqual(
    (JSON.parse(ps.stdout) as { Name: string }[]).map((c) => c.Name),
    ['a'],
  );
  t.deepEqual(await state(), withA, 'nothing of b, all of a (read-only)');
  t.is((await inMounts('umount', ['-R', renv.root])).code, 0);

  // A record filled with garbage: the commands that read the state do not crash.
  const [id] = view('containers');
  writeFileSync(
    join(`/proc/${holder}/root`, renv.root, 'containers', id as string, 'container.json'),
    '\u0000{"config": [garbage',
  );
  for (const args of [
    ['ps', '-a'],
    ['inspect', 'a'],
    ['run', '--rm', image, 'true'],
  ]) {
    const r = await ctnet(args);
    t.notRegex(r.stderr, /\bat .*\.(ts|js|cjs):\d+|TypeError|RangeError|SyntaxError/, `${args.join(' ')}: no crash: ${r.stderr}`);
    t.log(`${args.join(' ')} with a garbage record: exit ${r.code} ${r.stderr.trim()}`);
  }
});
