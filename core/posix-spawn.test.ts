import test from 'ava';
import { run } from './exec.js';
import { preferPosixSpawn, spawnNative } from './posix-spawn.js';

// This test process takes the plugin binaries' path: absolute programs start with posix_spawn.
preferPosixSpawn();

test('posix_spawn path: stdin in, stdout and stderr out, the exit code, a clean environment', async (t) => {
  const started = spawnNative(
    '/bin/sh',
    ['-c', 'cat; echo "out $FOO"; echo err >&2; exit 3'],
    'input\n',
    { FOO: 'bar', PATH: '/usr/bin:/bin' },
    5000,
  );
  if (!started) return t.fail('posix_spawn was not available (koffi or memfd missing)');
  const r = await started;
  t.deepEqual(r, { code: 3, signal: null, stdout: 'input\nout bar\n', stderr: 'err\n' });
});

test('posix_spawn path: a program past its time-out is killed, and run() reports error 11', async (t) => {
  const started = spawnNative('/bin/sleep', ['5'], '', {}, 200);
  if (!started) return t.fail('posix_spawn was not available');
  const r = await started;
  t.is(r.signal, 'SIGKILL');
  t.is(r.code, null);
  const err = await t.throwsAsync(run('/bin/sleep', ['5'], { timeoutMs: 200 }));
  t.is((err as unknown as { code: number }).code, 11);
});

test('posix_spawn path: a missing program is a clean error naming it; relative names go through child_process', async (t) => {
  const started = spawnNative('/no/such/program', [], '', {}, 1000);
  if (!started) return t.fail('posix_spawn was not available');
  const err = await t.throwsAsync(started);
  t.regex(err?.message ?? '', /ENOENT/);
  const viaRun = await t.throwsAsync(run('/no/such/program', []));
  t.regex(viaRun?.message ?? '', /failed to run \/no\/such\/program: .*ENOENT/);
  t.is(spawnNative('sh', ['-c', 'true'], '', {}, 1000), undefined, 'a relative name is not started here');
  t.is((await run('sh', ['-c', 'echo via child_process'])).stdout, 'via child_process\n');
});

test('posix_spawn path: the child starts with no signal blocked, and none of the standard ones ignored', async (t) => {
  const r = await run('/bin/sh', ['-c', 'grep -E "^Sig(Blk|Ign)" /proc/self/status']);
  t.regex(r.stdout, /^SigBlk:\s+0+$/m);
  // Signals 1-31 (glibc keeps 32 and 33 for itself; sigfillset leaves them out, and the child's libc sets them up).
  const ignored = BigInt(`0x${/^SigIgn:\s+([0-9a-f]+)$/m.exec(r.stdout)?.[1] ?? 'f'}`);
  t.is(ignored & 0x7fffffffn, 0n, r.stdout);
});
