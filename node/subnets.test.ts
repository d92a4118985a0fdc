import test from 'ava';
import { parseStoreUrl } from './etcd-store.js';
import { candidateSubnets, checkSubnetSize, nodeSubnets, nthAddress, parseCidr4 } from './subnets.js';

test('node subnets of a cluster CIDR, in order', (t) => {
  t.deepEqual(
    [...nodeSubnets(parseCidr4('10.244.0.0/22', 'c'), 24)],
    ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24'],
  );
  t.is(parseCidr4('10.244.7.9/16', 'c').text, '10.244.0.0/16', 'host bits dropped');
  t.throws(() => parseCidr4('fd00::/64', 'cluster CIDR'), { message: /expected an IPv4 CIDR/ });
  t.throws(() => checkSubnetSize(parseCidr4('10.244.0.0/16', 'c'), 16), { message: /longer than \/16/ });
  t.throws(() => checkSubnetSize(parseCidr4('10.244.0.0/16', 'c'), 31), { message: /at most \/30/ });
  t.is(nthAddress('10.244.3.0/24', 1), '10.244.3.1');
});

test('candidates: the preferred subnet first when free and in the cluster, then free ones only', (t) => {
  const cluster = parseCidr4('10.244.0.0/22', 'c');
  const taken = new Set(['10.244.0.0/24', '10.244.1.0/24']);
  const c = candidateSubnets(cluster, 24, taken, '10.244.3.0/24');
  t.is(c[0], '10.244.3.0/24');
  t.deepEqual([...c].sort(), ['10.244.2.0/24', '10.244.3.0/24']);
  t.false(
    candidateSubnets(cluster, 24, taken, '10.244.1.0/24').includes('10.244.1.0/24'),
    'a taken preferred subnet is not offered',
  );
  t.false(candidateSubnets(cluster, 24, taken, '10.9.0.0/24').includes('10.9.0.0/24'), 'nor one outside the cluster');
  t.deepEqual(candidateSubnets(cluster, 24, new Set([...nodeSubnets(cluster, 24)])), []);
});

test('store URLs', (t) => {
  t.deepEqual(parseStoreUrl('etcd://10.0.0.1:2379,10.0.0.2', false), ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
  t.deepEqual(parseStoreUrl('etcds://etcd.example:2379', false), ['https://etcd.example:2379']);
  t.deepEqual(parseStoreUrl('etcd://10.0.0.1:2379', true), ['https://10.0.0.1:2379'], 'TLS files switch to https');
  t.throws(() => parseStoreUrl('10.0.0.1:2379', false), { message: /expected etcd:\/\/HOST:PORT/ });
  t.throws(() => parseStoreUrl('etcd://a b', false), { message: /HOST:PORT entries/ });
});

test('VTEP MACs are unicast, locally administered and stable per node and VNI', async (t) => {
  const { vtepMac } = await import('./names.js');
  for (const node of ['n1', 'n2', 'n3', 'a', 'b', 'worker-17']) {
    const mac = vtepMac(node, 1);
    const first = Number.parseInt(mac.slice(0, 2), 16);
    t.is(first & 0x01, 0, `${mac} unicast`);
    t.is(first & 0x02, 2, `${mac} locally administered`);
    t.is(vtepMac(node, 1), mac);
    t.not(vtepMac(node, 2), mac);
  }
});
