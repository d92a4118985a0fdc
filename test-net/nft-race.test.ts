/**
 * The nftables backend under interleavings forced at a precise point (nft-race-driver.ts): changes made by another
 * process while a listing of a set is under way, and (see the bridge DEL tests) an address handed out again while its
 * old owner's masquerade is being removed. The storm of concurrent calls (torture-storm) meets these by chance.
 */
import test from 'ava';
import { runDriver } from './firewall-fixtures.js';
import { createSandbox } from './sandbox.js';

test('a listing of a set that a change interrupts is made again: every element there all along is listed once', async (t) => {
  const sb = await createSandbox(t);
  const r = await runDriver<{ before: number; listed: number; present: number; missing: number; repeated: number }>(
    sb.host,
    'nft-race-driver.ts',
    { scenario: 'interrupted-listing' },
  );
  t.log(r);
  t.is(r.present, r.before - 1);
  t.is(r.missing, 0);
  t.is(r.listed, r.present);
  t.true(r.repeated >= 1, 'the change did land while the listing was under way');
});

test('a teardown that finds its elements by listing, while the other attachments go, leaves none of its own', async (t) => {
  const sb = await createSandbox(t);
  const r = await runDriver<{ left: string[]; repeated: number }>(sb.host, 'nft-race-driver.ts', {
    scenario: 'teardown-during-changes',
  });
  t.deepEqual(r.left, []);
  t.true(r.repeated >= 1, 'the change did land while the listing was under way');
});
