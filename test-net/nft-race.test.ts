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

for (const known of [true, false]) {
  test(`a teardown ${known ? 'by known addresses' : 'by listing'} that a new owner of the address overtakes deletes none of the new owner's elements`, async (t) => {
    const sb = await createSandbox(t);
    const r = await runDriver<{ tookOver: boolean; teardown: string; state: string[] }>(sb.host, 'nft-race-driver.ts', {
      scenario: 'takeover-during-teardown',
      known,
    });
    t.true(r.tookOver, 'the new owner took the address over at the point where the teardown deletes');
    t.is(r.teardown, 'ok');
    const owner = 'ctnet masq net=race id=new if=eth0';
    t.deepEqual(r.state.sort(), [`attachments ${owner}`, `masq-local4 ${owner}`, `masq-src4 ${owner}`]);
  });
}
