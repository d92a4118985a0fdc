import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runnerPaths } from './paths.js';
import { type ContainerRecord, changeStatus, createRecord, listRecords, sweepRemovals } from './state.js';

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

test('createRecord puts a whole record in place at once; a draft left by a dead writer is swept, a live one kept', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'ctnet-state-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const paths = runnerPaths(root);
  mkdirSync(paths.containers, { recursive: true });
  const rec = {
    config: { id: 'abc123', name: 'web', createdAt: '2026-01-01T00:00:00Z' },
    state: { status: 'creating', ports: [] },
  };
  createRecord(paths, rec as unknown as ContainerRecord, { 'seccomp.rules': 'rules' });
  t.deepEqual(readdirSync(paths.containers), ['abc123'], 'no draft stays beside the record');
  t.is(readFileSync(join(paths.containers, 'abc123', 'seccomp.rules'), 'utf8'), 'rules');
  t.deepEqual(
    listRecords(paths).map((r) => r.config.id),
    ['abc123'],
  );
  const dead = join(paths.containers, '.creating-def456-999999999');
  const live = join(paths.containers, `.creating-def456-${process.pid}`);
  for (const d of [dead, live]) mkdirSync(d);
  t.is(sweepRemovals(paths), 1);
  t.false(existsSync(dead));
  t.true(existsSync(live), 'a creation still in progress is left to its process');
  t.deepEqual(
    listRecords(paths).map((r) => r.config.id),
    ['abc123'],
    'drafts are never listed',
  );
});

test('changeStatus: each status gets its fields, a repeated exit keeps the first code, a running container cannot restart', (t) => {
  const rec = {
    config: { name: 'c' },
    state: { status: 'exited', exitCode: 4, error: 'old', ports: [] },
  } as unknown as ContainerRecord;
  changeStatus(rec, { to: 'creating' });
  t.like(rec.state, { status: 'creating', exitCode: undefined, error: undefined, owner: { pid: process.pid } });
  changeStatus(rec, { to: 'running', pid: 42, pidStart: '7' });
  t.like(rec.state, { status: 'running', owner: undefined, pid: 42, pidStart: '7', finishedAt: undefined });
  t.truthy(rec.state.startedAt);
  t.throws(() => changeStatus(rec, { to: 'creating' }), { message: /cannot go from running to creating/ });
  t.throws(() => changeStatus(rec, { to: 'running', pid: 43, pidStart: '8' }), { message: /running to running/ });
  changeStatus(rec, { to: 'exited', exitCode: 137 });
  const finished = rec.state.finishedAt;
  t.like(rec.state, { status: 'exited', exitCode: 137 });
  changeStatus(rec, { to: 'exited', exitCode: 255 });
  t.like(rec.state, { status: 'exited', exitCode: 137, finishedAt: finished });
});
