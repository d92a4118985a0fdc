import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runnerPaths } from './paths.js';
import { sweepRemovals } from './state.js';

test('sweepRemovals deletes half-removed container dirs of dead processes only', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'ctnet-state-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const paths = runnerPaths(root);
  const dead = join(paths.containers, '.removing-abc123-999999999');
  const live = join(paths.containers, `.removing-abc123-${process.pid}`);
  const container = join(paths.containers, 'abc123');
  for (const d of [dead, live, container]) mkdirSync(join(d, 'etc'), { recursive: true });
  t.is(sweepRemovals(paths), 1);
  t.false(existsSync(dead));
  t.true(existsSync(live), 'a removal still in progress is left to its process');
  t.true(existsSync(container), 'containers are not touched');
});
