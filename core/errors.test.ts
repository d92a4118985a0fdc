import test from 'ava';
import { CtnetError, CtnetErrorList, ErrorCode, ErrorCollector } from './index.js';

test('a collector runs every step and rethrows a single failure as it is', async (t) => {
  const failures = new ErrorCollector();
  const ran: string[] = [];
  await failures.attempt('first', () => {
    ran.push('first');
    throw new CtnetError(ErrorCode.io, 'disk gone');
  });
  await failures.attempt('second', () => ran.push('second'));
  t.deepEqual(ran, ['first', 'second']);
  const err = t.throws(() => failures.throwIfAny('tear down'));
  t.false(err instanceof CtnetErrorList);
  t.is((err as CtnetError).code, ErrorCode.io);
  t.is(err?.message, 'failed to first: disk gone');
});

test('several failures become one list that keeps each code, nested lists flattened', async (t) => {
  const failures = new ErrorCollector();
  await failures.attempt('release the lease', () => {
    throw new CtnetError(ErrorCode.tryAgainLater, 'lock held');
  });
  await failures.attempt(undefined, () => {
    throw new Error('plain');
  });
  failures.add(new CtnetErrorList('inner', [new CtnetError(ErrorCode.portConflict, 'port taken')]));
  const err = t.throws(() => failures.throwIfAny('detach c1')) as CtnetErrorList;
  t.true(err instanceof CtnetErrorList);
  t.deepEqual(
    err.errors.map((e) => e.code),
    [ErrorCode.tryAgainLater, ErrorCode.internal, ErrorCode.portConflict],
  );
  t.is(err.code, ErrorCode.tryAgainLater, "the list's own code is the first failure's");
  t.regex(err.message, /^failed to detach c1: failed to release the lease: lock held; plain; port taken$/);
  t.regex(err.details ?? '', /code 11: .*; code 100: plain; code 101: port taken/);
});

test('nothing failed: nothing thrown', (t) => {
  t.notThrows(() => new ErrorCollector().throwIfAny('anything'));
});
