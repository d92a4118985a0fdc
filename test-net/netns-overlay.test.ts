/**
 * netns/'s overlay objects against the real kernel, in sandbox namespaces: VXLAN links, permanent neighbour and FDB
 * entries, routes owned by a protocol number. Two namespaces on one veth "underlay" reach each other's overlay
 * address only through what the test programs (no multicast group, no learning).
 */
import test, { type ExecutionContext } from 'ava';
import {
  deleteOwnedRoute,
  delFdb,
  delNeighbour,
  ensureVxlan,
  getVxlan,
  listFdb,
  listNeighbours,
  listOwnedRoutes,
  nudPermanent,
  replaceOwnedRoute,
  setFdb,
  setNeighbour,
  withNetlink,
} from '../netns/index.js';
import { createNetns, netnsPath, nsRun } from './sandbox.js';

const proto = 57;
const macA = '02:00:00:00:aa:01';
const macB = '02:00:00:00:bb:02';

interface Side {
  ns: string;
  underlay: string;
  overlay: string;
  subnet: string;
  mac: string;
}

async function twoHosts(t: ExecutionContext): Promise<[Side, Side]> {
  const a = await createNetns(t, 'vxa');
  const b = await createNetns(t, 'vxb');
  await nsRun(a, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b]);
  await nsRun(a, 'ip', ['addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
  await nsRun(b, 'ip', ['addr', 'add', '192.0.2.2/24', 'dev', 'eth0']);
  await nsRun(a, 'ip', ['link', 'set', 'eth0', 'up']);
  await nsRun(b, 'ip', ['link', 'set', 'eth0', 'up']);
  return [
    { ns: a, underlay: '192.0.2.1', overlay: '10.200.1.0', subnet: '10.200.1.0/24', mac: macA },
    { ns: b, underlay: '192.0.2.2', overlay: '10.200.2.0', subnet: '10.200.2.0/24', mac: macB },
  ];
}

/** The overlay as an agent programs it on `self` towards `peer`. */
async function program(self: Side, peer: Side): Promise<void> {
  await withNetlink(netnsPath(self.ns), async (nl) => {
    await ensureVxlan(nl, 'vx0', { vni: 7, port: 8472, local: self.underlay, underlay: 'eth0', mtu: 1450, mac: self.mac });
    await nl.addAddress('vx0', `${self.overlay}/32`, { ignoreExists: true });
    await setNeighbour(nl, 'vx0', peer.overlay, peer.mac);
    await setFdb(nl, 'vx0', peer.mac, peer.underlay);
    await replaceOwnedRoute(nl, { dst: peer.subnet, gw: peer.overlay, dev: 'vx0', onlink: true, protocol: proto });
  });
}

async function ping(from: Side, to: string): Promise<boolean> {
  const r = await nsRun(from.ns, 'ping', ['-c', '1', '-W', '1', '-I', from.overlay, to], { allowFailure: true });
  return r.code === 0;
}

test('a unicast VXLAN overlay: link, FDB, neighbour and onlink route as iproute2 reads them, and traffic over them', async (t) => {
  const [a, b] = await twoHosts(t);
  await program(a, b);
  await program(b, a);

  const [link] = JSON.parse((await nsRun(a.ns, 'ip', ['-j', '-d', 'link', 'show', 'dev', 'vx0'])).stdout) as {
    mtu: number;
    address: string;
    flags: string[];
    linkinfo: { info_kind: string; info_data: { id: number; port: number; local: string; learning: boolean; link?: string } };
  }[];
  t.is(link?.linkinfo.info_kind, 'vxlan');
  t.is(link?.linkinfo.info_data.id, 7);
  t.is(link?.linkinfo.info_data.port, 8472);
  t.is(link?.linkinfo.info_data.local, '192.0.2.1');
  t.false(link?.linkinfo.info_data.learning);
  t.is(link?.linkinfo.info_data.link, 'eth0');
  t.is(link?.mtu, 1450);
  t.is(link?.address, macA);
  t.true(link?.flags.includes('UP'));

  const fdb = JSON.parse((await nsRun(a.ns, 'bridge', ['-j', 'fdb', 'show', 'dev', 'vx0'])).stdout) as {
    mac: string;
    dst?: string;
    state?: string;
    flags: string[];
  }[];
  // No all-zeros (flood) entry: nothing goes anywhere it was not sent.
  t.deepEqual(
    fdb.filter((e) => e.dst).map((e) => ({ mac: e.mac, dst: e.dst, state: e.state, self: e.flags.includes('self') })),
    [{ mac: macB, dst: '192.0.2.2', state: 'permanent', self: true }],
  );
  const neigh = JSON.parse((await nsRun(a.ns, 'ip', ['-j', 'neigh', 'show', 'dev', 'vx0'])).stdout) as {
    dst: string;
    lladdr: string;
    state: string[];
  }[];
  t.deepEqual(neigh, [{ dst: '10.200.2.0', lladdr: macB, state: ['PERMANENT'] }]);
  const route = (await nsRun(a.ns, 'ip', ['route', 'show', '10.200.2.0/24'])).stdout.trim();
  t.is(route, '10.200.2.0/24 via 10.200.2.0 dev vx0 proto 57 onlink');

  // Our own readers agree with iproute2.
  await withNetlink(netnsPath(a.ns), async (nl) => {
    const vx = await getVxlan(nl, 'vx0');
    t.like(vx, { vni: 7, port: 8472, local: '192.0.2.1', learning: false });
    t.deepEqual(
      (await listFdb(nl, 'vx0')).filter((e) => e.dst).map((e) => [e.mac, e.dst, e.state]),
      [[macB, '192.0.2.2', nudPermanent]],
    );
    t.deepEqual(
      (await listNeighbours(nl, 'vx0')).filter((e) => !e.ip.includes(':')).map((e) => [e.ip, e.mac, e.state]),
      [['10.200.2.0', macB, nudPermanent]],
    );
    const owned = await listOwnedRoutes(nl, proto);
    t.deepEqual(
      owned.map((r) => ({ dst: r.dst, gw: r.gw, onlink: r.onlink, oif: r.oif === vx?.link.index })),
      [{ dst: '10.200.2.0/24', gw: '10.200.2.0', onlink: true, oif: true }],
    );
    t.deepEqual(await listOwnedRoutes(nl, proto + 1), [], 'another protocol number owns nothing');
  });

  t.true(await ping(a, '10.200.2.0'), 'A reaches B over the overlay');
  t.true(await ping(b, '10.200.1.0'), 'B reaches A over the overlay');

  // Without the FDB entry the frame has nowhere to go (no learning, no flood entry).
  await withNetlink(netnsPath(a.ns), (nl) => delFdb(nl, 'vx0', macB));
  t.false(await ping(a, '10.200.2.0'), 'no FDB entry: no path');
  await withNetlink(netnsPath(a.ns), (nl) => setFdb(nl, 'vx0', macB, '192.0.2.2'));
  t.true(await ping(a, '10.200.2.0'), 'FDB entry back: path back');

  // Deletes remove exactly ours and are idempotent.
  await withNetlink(netnsPath(a.ns), async (nl) => {
    await deleteOwnedRoute(nl, '10.200.2.0/24', proto);
    await deleteOwnedRoute(nl, '10.200.2.0/24', proto);
    await delNeighbour(nl, 'vx0', '10.200.2.0');
    await delNeighbour(nl, 'vx0', '10.200.2.0');
    await delFdb(nl, 'vx0', macB, '192.0.2.2');
    await delFdb(nl, 'nosuchlink', macB);
    t.deepEqual(await listOwnedRoutes(nl, proto), []);
    t.deepEqual(
      (await listNeighbours(nl, 'vx0')).filter((e) => !e.ip.includes(':')),
      [],
    );
    t.deepEqual(
      (await listFdb(nl, 'vx0')).filter((e) => e.dst),
      [],
    );
  });
  t.is((await nsRun(a.ns, 'ip', ['route', 'show', '10.200.2.0/24'])).stdout.trim(), '');
});

test('ensureVxlan keeps a matching link, makes a mismatched one again, and refuses a foreign link of that name', async (t) => {
  const [a] = await twoHosts(t);
  const path = netnsPath(a.ns);
  await withNetlink(path, async (nl) => {
    const first = await ensureVxlan(nl, 'vx0', { vni: 7, port: 8472, local: a.underlay, mtu: 1450, mac: macA });
    const again = await ensureVxlan(nl, 'vx0', { vni: 7, port: 8472, local: a.underlay, mtu: 1400, mac: macA });
    t.is(again.link.index, first.link.index, 'same parameters: the same link, MTU changed in place');
    t.is(again.link.mtu, 1400);
    const other = await ensureVxlan(nl, 'vx0', { vni: 8, port: 4789, local: a.underlay, mac: macA });
    t.not(other.link.index, first.link.index, 'another VNI and port: made again');
    t.like(other, { vni: 8, port: 4789, learning: false });
    t.is(other.link.mac, macA);
    await nl.ensureBridge('br-foreign');
    const err = await t.throwsAsync(ensureVxlan(nl, 'br-foreign', { vni: 9, port: 8472, local: a.underlay }));
    t.regex(err?.message ?? '', /exists and is a bridge/);
    t.is((await nl.getLink('br-foreign'))?.kind, 'bridge', 'the foreign link is left alone');
    await t.throwsAsync(ensureVxlan(nl, 'vx1', { vni: 0, port: 8472, local: a.underlay }), { message: /VNI must be/ });
    await t.throwsAsync(ensureVxlan(nl, 'vx1', { vni: 5, port: 8472, local: 'fd00::1' }), { message: /must be IPv4/ });
    t.is(await nl.getLink('vx1'), undefined, 'bad input makes nothing');
  });
});
