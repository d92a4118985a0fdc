/**
 * The firewall library's masquerade against the real kernel, both backends, inside sandboxes: traffic from a
 * container to the world is masqueraded (the world sees the host's address), traffic inside the subnet is not,
 * teardown needs only the key, never touches foreign rules, and GC removes exactly the attachments not listed.
 */
import test, { type ExecutionContext } from 'ava';
import {
  addForeignRules,
  addWorldV6,
  backends,
  firewallOps,
  firewallSession,
  makeBridge,
  makeContainer,
  nftAttachmentLeftovers,
  nftBin,
  type OpResult,
  rulesetSnapshot,
  withoutBase,
  worldLink6,
} from './firewall-fixtures.js';
import { connect, createSandbox, nsRun, startServer, worldLink } from './sandbox.js';

async function world(t: ExecutionContext) {
  const sb = await createSandbox(t, { world: true });
  const host = sb.host;
  const worldNs = sb.world as string;
  await addWorldV6(host, worldNs);
  const net = await makeBridge(host);
  return { host, worldNs, net };
}

// Attachment keys carry the bridge of makeBridge (ctbr22): the host interface the containers' subnet is on.
const key = (containerId: string, network = 'net1', ifname = 'eth0') => ({
  network,
  containerId,
  ifname,
  hostInterface: 'ctbr22',
});

for (const backend of backends) {
  test(`${backend}: masquerade sends container traffic to the world from the host's address, not inside the subnet`, async (t) => {
    const { host, worldNs, net } = await world(t);
    const c = await makeContainer(t, host, net, 5);
    await startServer(t, worldNs, 'tcp', '0.0.0.0', 8000);
    await startServer(t, worldNs, 'udp', '0.0.0.0', 8001);
    await startServer(t, worldNs, 'tcp', '::', 8002);
    await startServer(t, host, 'tcp', net.gw4, 8003);

    // Without masquerade the world has no route back to the container's subnet.
    t.regex(await connect(c.ns, 'tcp', worldLink.worldAddr, 8000), /^ERR/);

    const [setup] = await firewallOps(host, backend, [{ op: 'setupMasquerade', arg: [{ ...key('c5'), addresses: c.cidrs }] }]);
    t.true(setup?.ok, setup?.message);
    t.is(await connect(c.ns, 'tcp', worldLink.worldAddr, 8000), `from ${worldLink.hostAddr} hello`);
    t.is(await connect(c.ns, 'udp', worldLink.worldAddr, 8001), `from ${worldLink.hostAddr} hello`);
    t.is(await connect(c.ns, 'tcp', worldLink6.worldAddr, 8002), `from ${worldLink6.hostAddr} hello`);
    // Inside its subnet (the gateway) the container keeps its own address.
    t.is(await connect(c.ns, 'tcp', net.gw4, 8003), `from ${c.ip4} hello`);

    const [check] = await firewallOps(host, backend, [{ op: 'checkMasquerade', arg: [{ ...key('c5'), addresses: c.cidrs }] }]);
    t.true(check?.ok, check?.message);
  });

  test(`${backend}: teardown needs only the key, is idempotent and leaves every foreign rule as it was`, async (t) => {
    const { host, worldNs, net } = await world(t);
    await addForeignRules(host);
    const c = await makeContainer(t, host, net, 6);
    await startServer(t, worldNs, 'tcp', '0.0.0.0', 8000);
    const before = await rulesetSnapshot(host);

    const results = await firewallOps(host, backend, [
      { op: 'setupMasquerade', arg: [{ ...key('c6'), addresses: c.cidrs }] },
      { op: 'teardownMasquerade', arg: [key('c6')] },
      { op: 'teardownMasquerade', arg: [key('c6')] },
      { op: 'teardownMasquerade', arg: [key('never-set-up')] },
    ]);
    t.deepEqual(
      results.map((r) => r.ok),
      [true, true, true, true],
      JSON.stringify(results),
    );
    t.regex(await connect(c.ns, 'tcp', worldLink.worldAddr, 8000), /^ERR/);
    const after = await rulesetSnapshot(host);
    t.is(withoutBase(after), withoutBase(before));
    t.deepEqual(nftAttachmentLeftovers(after), []);
    t.notRegex(after, /CTNET-M-/);
  });

  test(`${backend}: a second setup of one attachment replaces its addresses; check notices a missing rule`, async (t) => {
    const { host, worldNs, net } = await world(t);
    const c = await makeContainer(t, host, net, 7);
    await startServer(t, worldNs, 'tcp', '0.0.0.0', 8000);
    const spec = { ...key('c7'), addresses: c.cidrs };
    const results = await firewallOps(host, backend, [
      { op: 'setupMasquerade', arg: [{ ...spec, addresses: ['10.22.0.99/24', 'fd00:22::99/64'] }] },
      { op: 'setupMasquerade', arg: [spec] },
      { op: 'checkMasquerade', arg: [spec] },
    ]);
    t.deepEqual(
      results.map((r) => r.ok),
      [true, true, true],
      JSON.stringify(results),
    );
    const rules = await rulesetSnapshot(host);
    t.notRegex(rules, /10\.22\.0\.99/);
    t.is(await connect(c.ns, 'tcp', worldLink.worldAddr, 8000), `from ${worldLink.hostAddr} hello`);

    // Remove one of our rules behind the library's back: CHECK must fail.
    if (backend === 'iptables') {
      const chain = rules.match(/:(CTNET-M-[0-9A-F]+)/)?.[1] as string;
      await nsRun(host, 'iptables', ['-t', 'nat', '-F', chain]);
    } else {
      // c7 is the only attachment: its IPv4 masquerade source is all the set holds.
      t.regex(rules, /set masq-src4 \{[^}]*elements = \{ 10\.22\.0\.7 comment /);
      await nsRun(host, nftBin, ['flush', 'set', 'inet', 'ctnet', 'masq-src4']);
    }
    const [check] = await firewallOps(host, backend, [{ op: 'checkMasquerade', arg: [spec] }]);
    t.false(check?.ok);
    t.is(check?.code, 100);
    // Teardown still cleans up what is left.
    const [down] = await firewallOps(host, backend, [{ op: 'teardownMasquerade', arg: [key('c7')] }]);
    t.true(down?.ok, down?.message);
    const after = await rulesetSnapshot(host);
    t.notRegex(after, /CTNET-M-/);
    t.deepEqual(nftAttachmentLeftovers(after), []);
  });

  test(`${backend}: gc removes attachments of the network not listed, and nothing else`, async (t) => {
    const { host } = await world(t);
    const results = await firewallOps(host, backend, [
      { op: 'setupMasquerade', arg: [{ ...key('keep'), addresses: ['10.22.0.11/24'] }] },
      { op: 'setupMasquerade', arg: [{ ...key('stale'), addresses: ['10.22.0.12/24', 'fd00:22::12/64'] }] },
      { op: 'setupMasquerade', arg: [{ ...key('other', 'net2'), addresses: ['10.23.0.13/24'] }] },
      { op: 'gcMasquerade', arg: ['net1', [{ containerId: 'keep', ifname: 'eth0' }]] },
      { op: 'checkMasquerade', arg: [{ ...key('keep'), addresses: ['10.22.0.11/24'] }] },
      { op: 'checkMasquerade', arg: [{ ...key('other', 'net2'), addresses: ['10.23.0.13/24'] }] },
      { op: 'checkMasquerade', arg: [{ ...key('stale'), addresses: ['10.22.0.12/24'] }] },
    ]);
    t.deepEqual(
      results.map((r) => r.ok),
      [true, true, true, true, true, true, false],
      JSON.stringify(results),
    );
    const rules = await rulesetSnapshot(host);
    t.notRegex(rules, /10\.22\.0\.12|fd00:22::12/);
    t.regex(rules, /10\.22\.0\.11/);
    t.regex(rules, /10\.23\.0\.13/);
  });

  test(`${backend}: names that try to smuggle rule text are rejected with code 7 and change nothing`, async (t) => {
    const { host } = await world(t);
    const before = await rulesetSnapshot(host);
    const bad = [
      { ...key('x -j ACCEPT'), addresses: ['10.22.0.5/24'] },
      { ...key('x\n-A POSTROUTING -j ACCEPT'), addresses: ['10.22.0.5/24'] },
      { ...key('x"; flush ruleset; "'), addresses: ['10.22.0.5/24'] },
      { ...key('ok', 'net" comment "x'), addresses: ['10.22.0.5/24'] },
      { ...key('ok', 'net1', 'eth0\n'), addresses: ['10.22.0.5/24'] },
      { ...key('ok'), addresses: ['10.22.0.5/24 -j ACCEPT'] },
      { ...key('ok'), addresses: ['10.22.0.5/33'] },
      { ...key('ok'), addresses: ['not-an-address'] },
    ];
    const results = await firewallOps(
      host,
      backend,
      bad.map((spec) => ({ op: 'setupMasquerade', arg: [spec] })),
    );
    t.deepEqual(
      results.map((r) => r.code),
      bad.map(() => 7),
      JSON.stringify(results),
    );
    t.is(await rulesetSnapshot(host), before);
  });

  test(`${backend}: an address taken over by a new attachment keeps working when the stale one is torn down`, async (t) => {
    const { host, worldNs, net } = await world(t);
    const c = await makeContainer(t, host, net, 8);
    await startServer(t, worldNs, 'tcp', '0.0.0.0', 8000);
    // "old" never got its DEL (e.g. a crash); the same address now belongs to "new".
    const results = await firewallOps(host, backend, [
      { op: 'setupMasquerade', arg: [{ ...key('old'), addresses: c.cidrs }] },
      { op: 'setupMasquerade', arg: [{ ...key('new'), addresses: c.cidrs }] },
      { op: 'teardownMasquerade', arg: [key('old')] },
      { op: 'checkMasquerade', arg: [{ ...key('new'), addresses: c.cidrs }] },
    ]);
    t.deepEqual(
      results.map((r) => r.ok),
      [true, true, true, true],
      JSON.stringify(results),
    );
    t.is(await connect(c.ns, 'tcp', worldLink.worldAddr, 8000), `from ${worldLink.hostAddr} hello`);
  });
}

test('nftables: the base made by libnftables in-process or by the nft program is the same; each tears down what the other made', async (t) => {
  const { host, worldNs, net } = await world(t);
  const c = await makeContainer(t, host, net, 8);
  const before = await rulesetSnapshot(host);
  const k = key('c8');
  const mappings = [
    { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
    { hostPort: 8081, containerPort: 81, protocol: 'udp', hostIP: worldLink.hostAddr },
  ];
  const setup = [
    { op: 'setupMasquerade', arg: [{ ...k, addresses: c.cidrs }] },
    { op: 'setupPortForwards', arg: [{ ...k, containerAddresses: c.cidrs, mappings }] },
  ];
  const known = {
    forwards: mappings.map(({ protocol, hostPort, hostIP }) => ({ protocol, hostPort, hostIP })),
    families: [4, 6],
    addresses: c.cidrs,
    snat: true,
    masqAll: false,
    hostInterface: net.bridge,
  };
  const program = { CTNET_NFT_DRIVER: 'program' };
  const allOk = (r: { results: OpResult[] }) => {
    for (const x of r.results) t.true(x.ok, x.message);
  };

  const byProgram = await firewallSession(host, 'nftables', setup, program);
  t.is(byProgram.driver, 'program');
  allOk(byProgram);
  const madeByProgram = await rulesetSnapshot(host);
  t.regex(madeByProgram, /tcp \. 8080 comment "ctnet dnat net=net1 id=c8 if=eth0" : 10\.22\.0\.8 \. 80/);

  // The library removes it by the keys DEL knows (its fast path), then builds it again.
  const byLibrary = await firewallSession(host, 'nftables', [
    { op: 'teardownMasquerade', arg: [k, c.cidrs, net.bridge] },
    { op: 'teardownPortForwards', arg: [k, known] },
  ]);
  t.is(byLibrary.driver, 'libnftables');
  allOk(byLibrary);
  t.is(withoutBase(await rulesetSnapshot(host)), withoutBase(before));
  allOk(await firewallSession(host, 'nftables', setup));
  t.is(await rulesetSnapshot(host), madeByProgram);
  await startServer(t, c.ns, 'tcp', '0.0.0.0', 80);
  t.is(await connect(worldNs, 'tcp', worldLink.hostAddr, 8080), `from ${worldLink.worldAddr} hello`);

  // The program's session removes it knowing only the key (it lists the sets first).
  allOk(
    await firewallSession(
      host,
      'nftables',
      [
        { op: 'teardownMasquerade', arg: [k] },
        { op: 'teardownPortForwards', arg: [k] },
      ],
      program,
    ),
  );
  t.deepEqual(nftAttachmentLeftovers(await rulesetSnapshot(host)), []);
});

test('an nftables backend requested where nft is missing fails with code 7', async (t) => {
  const { host } = await world(t);
  const [r] = await firewallOps(host, 'nftables', [], { FIREWALL_DRIVER_PATH: '/nonexistent' });
  t.is(r?.code, 7);
  t.regex(r?.message ?? '', /nft is not installed/);
});
