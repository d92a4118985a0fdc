import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { makeDirs } from './dirs.js';

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
