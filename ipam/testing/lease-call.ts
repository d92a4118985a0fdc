/**
 * One IPAM call in a process of its own, as a plugin binary makes it: for tests that need a second process on a
 * lease directory. Prints the addresses allocated or released as JSON.
 * Usage: node --import tsx ipam/testing/lease-call.ts ADD|DEL <dataDir> <network> <subnet> <containerId>
 */
import { formatIp } from '../../core/index.js';
import { allocateLeases, DiskLeaseStore, parseIpamConfig, releaseLeases } from '../index.js';

const [command, dataDir, network, subnet, containerId] = process.argv.slice(2);
if (!command || !dataDir || !network || !subnet || !containerId) throw new Error('usage: ADD|DEL dataDir network subnet id');
const cfg = parseIpamConfig({
  cniVersion: '1.1.0',
  name: network,
  type: 'host-local',
  ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]] },
});
const who = { containerId, ifname: 'eth0' };
const store = new DiskLeaseStore();
const out =
  command === 'ADD'
    ? (await allocateLeases(store, cfg, who, new Map())).map((a) => formatIp(a.ip))
    : await releaseLeases(store, cfg, who);
process.stdout.write(`${JSON.stringify(out)}\n`);
