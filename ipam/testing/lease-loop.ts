/**
 * ADD then DEL, over and over, in a process of its own, until it is killed: for the test that kills a writer at
 * random points. Lease owners are `<prefix>-<n>`; prints a line once the first ADD is done.
 * Usage: node --import tsx ipam/testing/lease-loop.ts <dataDir> <network> <subnet> <prefix>
 */
import { allocateLeases, DiskLeaseStore, parseIpamConfig, releaseLeases } from '../index.js';

const [dataDir, network, subnet, prefix] = process.argv.slice(2);
if (!dataDir || !network || !subnet || !prefix) throw new Error('usage: dataDir network subnet prefix');
const cfg = parseIpamConfig({
  cniVersion: '1.1.0',
  name: network,
  type: 'host-local',
  ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]] },
});
const store = new DiskLeaseStore();
for (let n = 0; ; n++) {
  const who = { containerId: `${prefix}-${n}`, ifname: 'eth0' };
  await allocateLeases(store, cfg, who, new Map());
  if (n === 0) process.stdout.write('running\n');
  await releaseLeases(store, cfg, who);
}
