/**
 * The bridge DEL and an address handed out again (bridge-race-driver.ts): the old owner's masquerade elements are
 * keyed by the address, so they must be gone before the address can go to a new attachment. Otherwise the new
 * attachment takes the elements over and the old owner's DEL, which looked them up as its own, deletes the new
 * one's: a running container silently loses its masquerade.
 */
import test from 'ava';
import { newContainer } from './bridge-helpers.js';
import { runDriver } from './firewall-fixtures.js';
import { createSandbox, tempDir } from './sandbox.js';

interface CallOutcome {
  exitCode: number;
  address?: string;
  stdout?: string;
}

test('nftables: the bridge DEL removes the masquerade of its address before releasing it, so the next owner keeps its own', async (t) => {
  const sb = await createSandbox(t);
  const dataDir = tempDir(t, 'br-race');
  const [old, neu] = [await newContainer(t, 'old'), await newContainer(t, 'new')];
  // One address only: the new attachment can only receive the old one's.
  const conf = {
    cniVersion: '1.1.0',
    name: 'race',
    type: 'bridge',
    bridge: 'rcbr1',
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: 'nftables',
    ipam: {
      type: 'host-local',
      dataDir,
      ranges: [[{ subnet: '10.127.0.0/24', rangeStart: '10.127.0.9', rangeEnd: '10.127.0.9' }]],
    },
  };
  const r = await runDriver<{
    oldAdd: CallOutcome;
    oldDel: CallOutcome;
    newAdd: CallOutcome;
    addressHeld: boolean;
    state: string[];
  }>(sb.host, 'bridge-race-driver.ts', { conf, old: { id: old.id, netns: old.netns }, new: { id: neu.id, netns: neu.netns } });
  t.log(r);
  t.is(r.oldAdd.address, '10.127.0.9/24');
  t.is(r.oldDel.exitCode, 0);
  t.is(r.newAdd.address, '10.127.0.9/24');
  const owner = `ctnet masq net=race id=${neu.id} if=eth0`;
  t.deepEqual(r.state.sort(), [`attachments ${owner}`, `masq-local4 ${owner}`, `masq-src4 ${owner}`]);
  t.true(r.addressHeld, 'the address was still leased when its masquerade elements were deleted');
});
