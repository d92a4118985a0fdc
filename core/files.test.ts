import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { makeDirs, readRegularFile } from './files.js';

test('makeDirs creates missing parents and accepts what exists', (t) => {
  const base = mkdtempSync(join(tmpdir(), 'ctnet-dirs-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  makeDirs(join(base, 'a', 'b', 'c'));
  t.true(statSync(join(base, 'a', 'b', 'c')).isDirectory());
  makeDirs(join(base, 'a', 'b'));
  writeFileSync(join(base, 'file'), '');
  t.is(t.throws(() => makeDirs(join(base, 'file', 'x')))?.message.includes('ENOTDIR'), true);
});

test('makeDirs fails at once where mkdir says ENOENT under an existing directory (/proc)', (t) => {
  const started = Date.now();
  const err = t.throws(() => makeDirs('/proc/ctnet-no-such-dir/x'));
  t.is((err as { code?: string }).code, 'ENOENT');
  t.true(Date.now() - started < 1000);
});

test('readRegularFile reads a file and refuses a FIFO at once instead of waiting for a writer', (t) => {
  const base = mkdtempSync(join(tmpdir(), 'ctnet-files-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  writeFileSync(join(base, 'resolv.conf'), 'nameserver 192.0.2.1\n');
  t.is(readRegularFile(join(base, 'resolv.conf')), 'nameserver 192.0.2.1\n');
  execFileSync('mkfifo', [join(base, 'fifo')]);
  t.is((t.throws(() => readRegularFile(join(base, 'fifo'))) as { code?: string }).code, 'EINVAL');
  t.is((t.throws(() => readRegularFile(base)) as { code?: string }).code, 'EINVAL');
});
