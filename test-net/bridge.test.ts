/** The bridge plugin with host-local, for real, in sandbox namespaces (issue 2). */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { addressOf, bridgeCall, bridgeConf, newContainer } from './bridge-helpers.js';
import { connect, createSandbox, deleteNetns, nsRun, snapshotNetns, startServer, worldLink } from './sandbox.js';

const leases = (dataDir: string, network = 'testnet') => {
  try {
    return readdirSync(join(dataDir, network)).filter((f) => /^[0-9a-f.:]+$/i.test(f) && f.includes('.') !== f.includes(':'));
  } catch {
    return [];
  }
};

/**
 * One answer within 5 s, probing every second: an IPv6 gateway new on its bridge is tentative (DAD) for 1-2 s after
 * ADD, as with the reference plugin, and a single probe sent then goes unanswered.
 */
async function ping(ns: string, address: string): Promise<boolean> {
  const r = await nsRun(ns, 'ping', ['-c', '1', '-w', '5', address], { allowFailure: true });
  return r.code === 0;
}

for (const version of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
  test(`spec ${version}: ADD, CHECK and DEL end to end`, async (t) => {
    const sb = await createSandbox(t);
    const c = await newContainer(t);
    const conf = bridgeConf({ cniVersion: version, dataDir: sb.dir });
    const add = await bridgeCall(sb, 'ADD', c, conf);
    t.is(add.exitCode, 0, add.stdout + add.stderr);
    t.is(add.json?.cniVersion, version);
    const ips = add.json?.ips as { address: string; gateway: string; interface: number; version?: string }[];
    t.is(ips[0]?.gateway, '10.99.0.1');
    t.is(ips[0]?.interface, 2);
    t.is(ips[0]?.version, version.startsWith('1.') ? undefined : '4');
    const ifaces = add.json?.interfaces as { name: string; sandbox?: string }[];
    t.deepEqual(
      ifaces.map((i) => i.name.replace(/^veth[0-9a-f]{8}$/, 'veth*')),
      ['ctt0', 'veth*', 'eth0'],
    );
    t.is(ifaces[2]?.sandbox, c.netns);
    if (version !== '0.3.0' && version !== '0.3.1') {
      const check = await bridgeCall(sb, 'CHECK', c, { ...conf, prevResult: add.json });
      t.is(check.exitCode, 0, check.stdout);
    }
    t.true(await ping(c.ns, '10.99.0.1'));
    const del = await bridgeCall(sb, 'DEL', c, { ...conf, prevResult: add.json });
    t.is(del.exitCode, 0, del.stdout);
    t.deepEqual(leases(sb.dir), []);
  });
}

test('a container reaches its gateway and another container on the same bridge', async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ dataDir: sb.dir });
  const a = await newContainer(t, 'a');
  const b = await newContainer(t, 'b');
  const addA = await bridgeCall(sb, 'ADD', a, conf);
  const addB = await bridgeCall(sb, 'ADD', b, conf);
  t.is(addA.exitCode + addB.exitCode, 0, addA.stdout + addB.stdout);
  t.not(addressOf(addA.json), addressOf(addB.json));
  t.true(await ping(a.ns, '10.99.0.1'));
  await startServer(t, b.ns, 'tcp', '0.0.0.0', 8080);
  t.is(await connect(a.ns, 'tcp', addressOf(addB.json), 8080), `from ${addressOf(addA.json)} hello`);
});

test('ipMasq: a container reaches a world server, which sees the sandbox host address', async (t) => {
  const sb = await createSandbox(t, { world: true });
  const world = sb.world as string;
  const conf = bridgeConf({ dataDir: sb.dir, ipMasq: true });
  const c = await newContainer(t);
  const add = await bridgeCall(sb, 'ADD', c, conf);
  t.is(add.exitCode, 0, add.stdout);
  await startServer(t, world, 'tcp', worldLink.worldAddr, 9000);
  await startServer(t, world, 'udp', worldLink.worldAddr, 9001);
  t.is(await connect(c.ns, 'tcp', worldLink.worldAddr, 9000), `from ${worldLink.hostAddr} hello`);
  t.is(await connect(c.ns, 'udp', worldLink.worldAddr, 9001), `from ${worldLink.hostAddr} hello`);
  const del = await bridgeCall(sb, 'DEL', c, { ...conf, prevResult: add.json });
  t.is(del.exitCode, 0);
  const nat = await nsRun(sb.host, 'iptables-save', ['-t', 'nat']);
  t.notRegex(nat.stdout, new RegExp(c.id), 'no masquerade rule of the container is left');
});

test('dual stack: the container gets an IPv4 and an IPv6 address and reaches both gateways', async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ dataDir: sb.dir, subnet6: 'fd99::/64' });
  const c = await newContainer(t);
  const add = await bridgeCall(sb, 'ADD', c, conf);
  t.is(add.exitCode, 0, add.stdout);
  const v6 = addressOf(add.json, 6);
  t.regex(v6, /^fd99::/);
  t.true(await ping(c.ns, '10.99.0.1'));
  t.true(await ping(c.ns, 'fd99::1'));
  const routes = await nsRun(c.ns, 'ip', ['-6', 'route', 'show', 'default']);
  t.regex(routes.stdout, /default via fd99::1 dev eth0/);
});

test('mtu is applied to both ends of the veth pair and the bridge', async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ dataDir: sb.dir, mtu: 1400 });
  const c = await newContainer(t);
  const add = await bridgeCall(sb, 'ADD', c, conf);
  t.is(add.exitCode, 0, add.stdout);
  const hostVeth = (add.json?.interfaces as { name: string }[] | undefined)?.[1]?.name as string;
  const mtuOf = async (ns: string, dev: string) => {
    const r = await nsRun(ns, 'ip', ['-j', 'link', 'show', dev]);
    return (JSON.parse(r.stdout) as { mtu: number }[])[0]?.mtu;
  };
  t.is(await mtuOf(c.ns, 'eth0'), 1400);
  t.is(await mtuOf(sb.host, hostVeth), 1400);
  t.is(await mtuOf(sb.host, 'ctt0'), 1400);
});

test('30 parallel ADDs give 30 distinct addresses and 30 working containers', async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ dataDir: sb.dir });
  const containers = await Promise.all(Array.from({ length: 30 }, (_, i) => newContainer(t, `p${i}`)));
  const adds = await Promise.all(containers.map((c) => bridgeCall(sb, 'ADD', c, conf)));
  for (const a of adds) t.is(a.exitCode, 0, a.stdout);
  const addresses = adds.map((a) => addressOf(a.json));
  t.is(new Set(addresses).size, 30);
  const reach = await Promise.all(containers.map((c) => ping(c.ns, '10.99.0.1')));
  t.deepEqual(reach, Array(30).fill(true));
  t.is(leases(sb.dir).length, 30);
});

test('DEL twice succeeds, and DEL after the netns is gone releases the lease and the rules', async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ dataDir: sb.dir, ipMasq: true });
  const c = await newContainer(t);
  const add = await bridgeCall(sb, 'ADD', c, conf);
  t.is(add.exitCode, 0, add.stdout);
  await deleteNetns(c.ns);
  for (const netns of [c.netns, '']) {
    const del = await bridgeCall(sb, 'DEL', c, conf, { netns });
    t.is(del.exitCode, 0, del.stdout);
  }
  t.deepEqual(leases(sb.dir), []);
  const nat = await nsRun(sb.host, 'iptables-save', ['-t', 'nat']);
  t.notRegex(nat.stdout, new RegExp(c.id));
});

test("CHECK fails after the container's veth is deleted behind its back", async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ dataDir: sb.dir });
  const c = await newContainer(t);
  const add = await bridgeCall(sb, 'ADD', c, conf);
  t.is(add.exitCode, 0);
  await nsRun(c.ns, 'ip', ['link', 'del', 'eth0']);
  const check = await bridgeCall(sb, 'CHECK', c, { ...conf, prevResult: add.json });
  t.not(check.exitCode, 0);
  t.regex(String(check.json?.msg), /eth0/);
});

test('GC frees the leases and masquerade chains of attachments that are not listed', async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ cniVersion: '1.1.0', dataDir: sb.dir, ipMasq: true });
  const keep = await newContainer(t, 'k');
  const drop = await newContainer(t, 'd');
  t.is((await bridgeCall(sb, 'ADD', keep, conf)).exitCode, 0);
  t.is((await bridgeCall(sb, 'ADD', drop, conf)).exitCode, 0);
  t.is(leases(sb.dir).length, 2);
  const gc = await bridgeCall(sb, 'GC', keep, {
    ...conf,
    'cni.dev/valid-attachments': [{ containerID: keep.id, ifname: 'eth0' }],
  });
  t.is(gc.exitCode, 0, gc.stdout);
  t.is(leases(sb.dir).length, 1);
  const nat = (await nsRun(sb.host, 'iptables-save', ['-t', 'nat'])).stdout;
  t.regex(nat, new RegExp(keep.id));
  t.notRegex(nat, new RegExp(drop.id));
});

test('STATUS is fine while addresses are left and code 50 when the range is exhausted', async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ cniVersion: '1.1.0', dataDir: sb.dir, subnet: '10.99.0.0/30' });
  const c = await newContainer(t);
  t.is((await bridgeCall(sb, 'STATUS', c, conf)).exitCode, 0);
  t.is((await bridgeCall(sb, 'ADD', c, conf)).exitCode, 0);
  const status = await bridgeCall(sb, 'STATUS', c, conf);
  t.is(status.json?.code, 50);
});

interface BadInput {
  title: string;
  code: number;
  conf?: (base: Record<string, unknown>) => unknown;
  env?: Record<string, string>;
  prepare?: (ns: string) => Promise<void>;
}

const badInputs: BadInput[] = [
  { title: 'malformed JSON', code: 6, conf: () => '{"cniVersion": "1.0.0", "name": ' },
  { title: 'missing cniVersion', code: 1, conf: ({ cniVersion: _, ...rest }) => rest },
  { title: 'unsupported cniVersion', code: 1, conf: (b) => ({ ...b, cniVersion: '0.2.0' }) },
  { title: 'missing name', code: 7, conf: ({ name: _, ...rest }) => rest },
  {
    title: 'invalid CIDR',
    code: 7,
    conf: (b) => ({ ...b, ipam: { ...(b.ipam as object), ranges: [[{ subnet: '10.99.0.300/24' }]] } }),
  },
  {
    title: 'gateway outside its subnet',
    code: 7,
    conf: (b) => ({ ...b, ipam: { ...(b.ipam as object), ranges: [[{ subnet: '10.99.0.0/24', gateway: '10.98.0.1' }]] } }),
  },
  {
    title: 'rangeStart after rangeEnd',
    code: 7,
    conf: (b) => ({
      ...b,
      ipam: { ...(b.ipam as object), ranges: [[{ subnet: '10.99.0.0/24', rangeStart: '10.99.0.50', rangeEnd: '10.99.0.10' }]] },
    }),
  },
  { title: 'a bridge key value we cannot honour', code: 7, conf: (b) => ({ ...b, macspoofchk: true }) },
  { title: 'a wrongly typed key', code: 7, conf: (b) => ({ ...b, mtu: 'big' }) },
  { title: 'container ID with a newline', code: 4, env: { CNI_CONTAINERID: 'abc\ndef' } },
  { title: 'container ID with a semicolon', code: 4, env: { CNI_CONTAINERID: 'abc;def' } },
  { title: 'container ID with a space', code: 4, env: { CNI_CONTAINERID: 'abc def' } },
  { title: 'CNI_IFNAME longer than 15 bytes', code: 4, env: { CNI_IFNAME: 'eth0123456789abc' } },
  { title: 'CNI_IFNAME containing a slash', code: 4, env: { CNI_IFNAME: 'eth/0' } },
  { title: 'CNI_NETNS that is not a network namespace', code: 4, env: { CNI_NETNS: '/etc/hostname' } },
  {
    title: 'an interface name that already exists in the namespace',
    code: 103,
    prepare: (ns) => nsRun(ns, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0peer']).then(() => undefined),
  },
];

for (const bad of badInputs) {
  test(`bad input: ${bad.title} → code ${bad.code}, host unchanged, no lease`, async (t) => {
    const sb = await createSandbox(t);
    const c = await newContainer(t);
    await bad.prepare?.(c.ns);
    const base = bridgeConf({ dataDir: sb.dir, ipMasq: true });
    const before = await snapshotNetns(sb.host);
    const r = await bridgeCall(sb, 'ADD', c, bad.conf ? bad.conf(base) : base, { extraEnv: bad.env });
    t.not(r.exitCode, 0);
    t.is(r.json?.code, bad.code, r.stdout);
    t.true(typeof r.json?.msg === 'string' && r.json.msg.length > 0);
    t.is(await snapshotNetns(sb.host), before);
    t.deepEqual(leases(sb.dir), []);
  });
}

test('an exhausted range fails with code 102 and leaves nothing behind', async (t) => {
  const sb = await createSandbox(t);
  const conf = bridgeConf({ dataDir: sb.dir, subnet: '10.99.0.0/30', ipMasq: true });
  const first = await newContainer(t, 'f');
  t.is((await bridgeCall(sb, 'ADD', first, conf)).exitCode, 0);
  const before = await snapshotNetns(sb.host);
  const second = await newContainer(t, 's');
  const r = await bridgeCall(sb, 'ADD', second, conf);
  t.is(r.json?.code, 102, r.stdout);
  t.is(await snapshotNetns(sb.host), before);
  t.is(leases(sb.dir).length, 1);
  const links = await nsRun(second.ns, 'ip', ['-o', 'link']);
  t.notRegex(links.stdout, /eth0/);
});

test('a failure after the links are made undoes everything: no bridge, veth, lease or rule is left', async (t) => {
  const sb = await createSandbox(t);
  const before = await snapshotNetns(sb.host);
  // A route through a gateway outside every subnet: the kernel refuses it after bridge, veth,
  // addresses and masquerade exist.
  const conf = bridgeConf({ dataDir: sb.dir, subnet: '10.98.0.0/24', ipMasq: true });
  (conf.ipam as Record<string, unknown>).routes = [{ dst: '10.200.0.0/16', gw: '192.0.2.77' }];
  const c = await newContainer(t, 'u');
  const r = await bridgeCall(sb, 'ADD', c, conf);
  t.not(r.exitCode, 0);
  t.regex(String(r.json?.msg), /route|unreachable/i, r.stdout);
  // Links, addresses and routes exactly as before; of the rules only our (empty) base chain may stay.
  const after = await snapshotNetns(sb.host);
  const links = (snap: string) => snap.split('\n---\n').slice(0, 4).join('\n---\n');
  t.is(links(after), links(before));
  t.notRegex(after, /CTNET-M-/);
  t.is(leases(sb.dir).length, 0);
  t.notRegex((await nsRun(c.ns, 'ip', ['-o', 'link'])).stdout, /eth0/);
});
