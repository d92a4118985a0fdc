/**
 * The portmap plugin binary (bin/cni/portmap) against the real kernel, both firewall backends, TCP and UDP, in
 * sandboxes: a client in the world, the host itself (own address and 127.0.0.1), the container itself (hairpin) and
 * a sibling reach a published port; hostIP limits a mapping; conflicts are refused with the holder's name; DEL
 * without mappings or prevResult removes exactly its own rules; GC and CHECK; the admin chain survives; UDP
 * conntrack entries for the host port are flushed; bad input changes nothing.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import {
  addForeignRules,
  addWorldV6,
  type BridgeNet,
  backends,
  type Container,
  fakePrevResult,
  makeBridge,
  makeContainer,
  nftAttachmentLeftovers,
  nftBin,
  rulesetSnapshot,
  withoutBase,
  worldLink6,
} from './firewall-fixtures.js';
import {
  cniBinDir,
  connect,
  createSandbox,
  netnsPath,
  nsRun,
  type PluginCall,
  runPlugin,
  startServer,
  worldLink,
} from './sandbox.js';

const portmapBin = join(cniBinDir, 'portmap');
type Backend = (typeof backends)[number];

interface Mapping {
  hostPort: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

interface World {
  host: string;
  worldNs: string;
  net: BridgeNet;
  stateDir: string;
  backend: Backend;
}

async function world(t: ExecutionContext, backend: Backend): Promise<World> {
  const sb = await createSandbox(t, { world: true });
  const worldNs = sb.world as string;
  await addWorldV6(sb.host, worldNs);
  const net = await makeBridge(sb.host);
  return { host: sb.host, worldNs, net, stateDir: join(sb.dir, 'portmap'), backend };
}

function conf(w: World, c: Container | undefined, mappings: Mapping[] | undefined, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: 'net1',
    type: 'portmap',
    capabilities: { portMappings: true },
    backend: w.backend,
    stateDir: w.stateDir,
    ...(mappings && { runtimeConfig: { portMappings: mappings } }),
    ...(c && { prevResult: fakePrevResult(w.net, c) }),
    ...extra,
  };
}

async function portmap(
  w: World,
  command: PluginCall['command'],
  id: string,
  c: Container | undefined,
  mappings: Mapping[] | undefined,
  extra: Record<string, unknown> = {},
) {
  const call: PluginCall = { command, containerId: id, ifname: 'eth0', netns: c ? netnsPath(c.ns) : '' };
  return runPlugin(w.host, portmapBin, call, conf(w, c, mappings, extra));
}

async function addOk(t: ExecutionContext, w: World, id: string, c: Container, mappings: Mapping[]) {
  const r = await portmap(w, 'ADD', id, c, mappings);
  t.is(r.exitCode, 0, r.stdout + r.stderr);
  return r;
}

/** What the sandbox's firewall would look like without our base chains, plus anything we left behind. */
async function leftovers(w: World): Promise<{ rules: string; ours: string[]; claims: string[] }> {
  const snap = await rulesetSnapshot(w.host);
  const ours = [...snap.matchAll(/CTNET-(?:DN|M)-[0-9A-F]+/g)].map((m) => m[0]);
  ours.push(...nftAttachmentLeftovers(snap));
  const claims = existsSync(join(w.stateDir, 'ports')) ? readdirSync(join(w.stateDir, 'ports')) : [];
  return { rules: withoutBase(snap), ours: [...new Set(ours)], claims };
}

for (const backend of backends) {
  test(`${backend}: a published port answers the world, the host (own address and 127.0.0.1), the container itself and a sibling`, async (t) => {
    const w = await world(t, backend);
    const c1 = await makeContainer(t, w.host, w.net, 2);
    const c2 = await makeContainer(t, w.host, w.net, 3);
    await startServer(t, c1.ns, 'tcp', '0.0.0.0', 80);
    await startServer(t, c1.ns, 'udp', '0.0.0.0', 53);
    await startServer(t, c1.ns, 'tcp', '::', 81);
    await addOk(t, w, 'c1', c1, [
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp' },
      { hostPort: 8081, containerPort: 81, protocol: 'tcp' },
    ]);
    const gw = w.net.gw4;
    // From the world: the client's own address is preserved.
    t.is(await connect(w.worldNs, 'tcp', worldLink.hostAddr, 8080), `from ${worldLink.worldAddr} hello`);
    t.is(await connect(w.worldNs, 'udp', worldLink.hostAddr, 5353), `from ${worldLink.worldAddr} hello`);
    t.is(await connect(w.worldNs, 'tcp', worldLink6.hostAddr, 8081), `from ${worldLink6.worldAddr} hello`);
    // From the host itself, through its own address and through 127.0.0.1 (route_localnet + masquerade).
    t.regex(await connect(w.host, 'tcp', worldLink.hostAddr, 8080), /^from \S+ hello$/);
    t.is(await connect(w.host, 'tcp', '127.0.0.1', 8080), `from ${gw} hello`);
    t.is(await connect(w.host, 'udp', '127.0.0.1', 5353), `from ${gw} hello`);
    t.is((await nsRun(w.host, 'sysctl', ['-n', `net.ipv4.conf.${w.net.bridge}.route_localnet`])).stdout.trim(), '1');
    // Hairpin: the container to its own published port, and a sibling to it, through the host's address.
    t.is(await connect(c1.ns, 'tcp', worldLink.hostAddr, 8080), `from ${gw} hello`);
    t.is(await connect(c1.ns, 'udp', worldLink.hostAddr, 5353), `from ${gw} hello`);
    t.is(await connect(c2.ns, 'tcp', worldLink.hostAddr, 8080), `from ${gw} hello`);
    t.is(await connect(c2.ns, 'udp', worldLink.hostAddr, 5353), `from ${gw} hello`);

    const check = await portmap(w, 'CHECK', 'c1', c1, [
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp' },
      { hostPort: 8081, containerPort: 81, protocol: 'tcp' },
    ]);
    t.is(check.exitCode, 0, check.stdout);
  });

  test(`${backend}: hostIP limits a mapping to that address; [::1] is refused with a clear message`, async (t) => {
    const w = await world(t, backend);
    const c1 = await makeContainer(t, w.host, w.net, 2);
    await startServer(t, c1.ns, 'tcp', '0.0.0.0', 80);
    await addOk(t, w, 'c1', c1, [{ hostPort: 8080, containerPort: 80, hostIP: worldLink.hostAddr }]);
    t.is(await connect(w.worldNs, 'tcp', worldLink.hostAddr, 8080), `from ${worldLink.worldAddr} hello`);
    t.regex(await connect(w.host, 'tcp', '127.0.0.1', 8080), /^ERR/);
    t.regex(await connect(w.host, 'tcp', w.net.gw4, 8080), /^ERR/);

    const before = await rulesetSnapshot(w.host);
    const r = await portmap(w, 'ADD', 'c9', c1, [{ hostPort: 9090, containerPort: 80, hostIP: '::1' }]);
    t.is(r.json?.code, 7);
    t.regex(String(r.json?.msg), /IPv6 loopback address cannot be forwarded/);
    t.is(await rulesetSnapshot(w.host), before);
  });

  test(`${backend}: a conflicting host port is refused naming the holder, and the holder keeps working`, async (t) => {
    const w = await world(t, backend);
    const c1 = await makeContainer(t, w.host, w.net, 2);
    const c2 = await makeContainer(t, w.host, w.net, 3);
    await startServer(t, c1.ns, 'tcp', '0.0.0.0', 80);
    await startServer(t, c2.ns, 'tcp', '0.0.0.0', 80);
    await addOk(t, w, 'c1', c1, [{ hostPort: 8080, containerPort: 80 }]);
    const before = await rulesetSnapshot(w.host);
    for (const mapping of [
      { hostPort: 8080, containerPort: 80 },
      { hostPort: 8080, containerPort: 80, hostIP: worldLink.hostAddr },
      { hostPort: 8080, containerPort: 80, hostIP: '0.0.0.0' },
    ]) {
      const r = await portmap(w, 'ADD', 'c2', c2, [{ hostPort: 9000, containerPort: 80 }, mapping]);
      t.is(r.json?.code, 101, JSON.stringify(mapping));
      t.regex(String(r.json?.msg), /8080\/tcp: already published by container "c1"/);
    }
    t.is(await rulesetSnapshot(w.host), before);
    t.is(await connect(w.worldNs, 'tcp', worldLink.hostAddr, 8080), `from ${worldLink.worldAddr} hello`);
    // The same port on UDP is another port; after c1's DEL the TCP port is free again.
    await addOk(t, w, 'c2', c2, [{ hostPort: 8080, containerPort: 80, protocol: 'udp' }]);
    t.is((await portmap(w, 'DEL', 'c1', c1, [{ hostPort: 8080, containerPort: 80 }])).exitCode, 0);
    await addOk(t, w, 'c3', c2, [{ hostPort: 8080, containerPort: 80 }]);
    t.is(await connect(w.worldNs, 'tcp', worldLink.hostAddr, 8080), `from ${worldLink.worldAddr} hello`);
  });

  test(`${backend}: DEL without mappings or prevResult removes only its own rules; after all DELs the ruleset is as before`, async (t) => {
    const w = await world(t, backend);
    await addForeignRules(w.host);
    const before = await leftovers(w);
    const containers = await Promise.all([2, 3, 4].map((i) => makeContainer(t, w.host, w.net, i)));
    for (const [i, c] of containers.entries()) {
      await startServer(t, c.ns, 'tcp', '0.0.0.0', 80);
      await addOk(t, w, `c${i}`, c, [
        { hostPort: 8000 + i, containerPort: 80 },
        { hostPort: 5000 + i, containerPort: 53, protocol: 'udp' },
      ]);
    }
    // The admin's own rule in the admin chain: it must survive all our ADDs and DELs.
    if (backend === 'iptables') await nsRun(w.host, 'iptables', ['-A', 'CTNET-ADMIN', '-s', '192.0.2.7', '-j', 'DROP']);
    else await nsRun(w.host, nftBin, ['add', 'rule', 'inet', 'ctnet', 'admin', 'ip', 'saddr', '192.0.2.7', 'drop']);

    // c0: DEL with neither mappings nor prevResult (and an empty netns, as some runtimes send).
    t.is((await portmap(w, 'DEL', 'c0', undefined, undefined)).exitCode, 0);
    t.regex(await connect(w.worldNs, 'tcp', worldLink.hostAddr, 8000), /^ERR/);
    t.is(await connect(w.worldNs, 'tcp', worldLink.hostAddr, 8001), `from ${worldLink.worldAddr} hello`);
    // c1: DEL with mappings but without prevResult; c2: a full DEL; then DEL again (idempotent).
    t.is((await portmap(w, 'DEL', 'c1', undefined, [{ hostPort: 8001, containerPort: 80 }])).exitCode, 0);
    t.is(await connect(w.worldNs, 'tcp', worldLink.hostAddr, 8002), `from ${worldLink.worldAddr} hello`);
    t.is((await portmap(w, 'DEL', 'c2', containers[2], [{ hostPort: 8002, containerPort: 80 }])).exitCode, 0);
    t.is((await portmap(w, 'DEL', 'c2', containers[2], [{ hostPort: 8002, containerPort: 80 }])).exitCode, 0);

    const after = await leftovers(w);
    t.deepEqual(after.ours, []);
    t.deepEqual(after.claims, []);
    const adminRule = backend === 'iptables' ? /-A CTNET-ADMIN -s 192\.0\.2\.7\/32 -j DROP/ : /ip saddr 192\.0\.2\.7 drop/;
    t.regex(await rulesetSnapshot(w.host), adminRule);
    t.is(after.rules, before.rules);
  });

  test(`${backend}: GC removes the forwards and claims of attachments not listed; CHECK notices a missing rule`, async (t) => {
    const w = await world(t, backend);
    const c1 = await makeContainer(t, w.host, w.net, 2);
    const c2 = await makeContainer(t, w.host, w.net, 3);
    await startServer(t, c1.ns, 'tcp', '0.0.0.0', 80);
    await addOk(t, w, 'c1', c1, [{ hostPort: 8080, containerPort: 80 }]);
    await addOk(t, w, 'c2', c2, [{ hostPort: 8081, containerPort: 80 }]);
    const gc = await runPlugin(
      w.host,
      portmapBin,
      { command: 'GC' },
      {
        ...conf(w, undefined, undefined),
        'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }],
      },
    );
    t.is(gc.exitCode, 0, gc.stdout);
    const rules = await rulesetSnapshot(w.host);
    t.notRegex(rules, /id=c2 /);
    t.regex(rules, /id=c1 /);
    t.deepEqual(readdirSync(join(w.stateDir, 'ports')), ['tcp-8080']);
    t.is(await connect(w.worldNs, 'tcp', worldLink.hostAddr, 8080), `from ${worldLink.worldAddr} hello`);
    // c2's port is free again.
    await addOk(t, w, 'c3', c2, [{ hostPort: 8081, containerPort: 80 }]);

    const mappings = [{ hostPort: 8080, containerPort: 80 }];
    t.is((await portmap(w, 'CHECK', 'c1', c1, mappings)).exitCode, 0);
    if (backend === 'iptables') {
      const chain = rules.match(/-A (CTNET-DN-[0-9A-F]+) .*id=c1 /)?.[1] as string;
      await nsRun(w.host, 'iptables', ['-t', 'nat', '-F', chain]);
    } else {
      t.regex(rules, /tcp \. 8080 comment "ctnet dnat net=\S+ id=c1 if=eth0" : /);
      await nsRun(w.host, nftBin, ['delete', 'element', 'inet', 'ctnet', 'fwd4', '{ tcp . 8080 }']);
    }
    const check = await portmap(w, 'CHECK', 'c1', c1, mappings);
    t.not(check.exitCode, 0);
    t.is((await portmap(w, 'DEL', 'c1', c1, mappings)).exitCode, 0);
    t.notRegex(await rulesetSnapshot(w.host), /id=c1 /);
  });

  test(`${backend}: UDP conntrack entries for the host port are flushed on ADD and DEL`, async (t) => {
    const w = await world(t, backend);
    const c1 = await makeContainer(t, w.host, w.net, 2);
    const c2 = await makeContainer(t, w.host, w.net, 3);
    await startServer(t, c1.ns, 'udp', '0.0.0.0', 53);
    await startServer(t, c2.ns, 'udp', '0.0.0.0', 53);
    const mapping = [{ hostPort: 5353, containerPort: 53, protocol: 'udp' }];
    /** The conntrack entries of flows to host port 5353: their reply source tells where the flow goes. */
    const flows = async () =>
      (await nsRun(w.host, 'conntrack', ['-L', '-p', 'udp', '--orig-port-dst', '5353'], { allowFailure: true })).stdout
        .split('\n')
        .filter((l) => l.includes('dport=5353'))
        .map((l) => l.match(/src=(\S+) dst=\S+ sport=53 /)?.[1] ?? 'host');
    // One long-lived client flow (fixed source port), as a metrics agent or DNS client would keep.
    const send = () =>
      nsRun(w.worldNs, 'socat', ['-T1', '-u', 'STDIN', `UDP:${worldLink.hostAddr}:5353,sourceport=40000`], { input: 'x' });

    await addOk(t, w, 'c1', c1, mapping);
    await send();
    t.deepEqual(await flows(), [c1.ip4]);
    t.is((await portmap(w, 'DEL', 'c1', c1, mapping)).exitCode, 0);
    t.deepEqual(await flows(), [], 'DEL flushes the flow to the removed container');
    await send();
    t.deepEqual(await flows(), ['host'], 'unpublished: the flow ends at the host');
    await addOk(t, w, 'c2', c2, mapping);
    t.deepEqual(await flows(), [], 'ADD flushes the flow that bypassed the new DNAT');
    await send();
    t.deepEqual(await flows(), [c2.ip4]);
  });

  test(`${backend}: bad input gives the right CNI error and changes nothing`, async (t) => {
    const w = await world(t, backend);
    const c1 = await makeContainer(t, w.host, w.net, 2);
    const before = await rulesetSnapshot(w.host);
    const cases: { mappings: unknown; id?: string; name?: string; code: number; msg: RegExp }[] = [
      { mappings: [{ hostPort: 0, containerPort: 80 }], code: 7, msg: /hostPort/ },
      { mappings: [{ hostPort: 65536, containerPort: 80 }], code: 7, msg: /hostPort/ },
      { mappings: [{ hostPort: 8080, containerPort: 70000 }], code: 7, msg: /containerPort/ },
      { mappings: [{ hostPort: 8080, containerPort: 80, protocol: 'icmp' }], code: 7, msg: /protocol "icmp"/ },
      { mappings: [{ hostPort: 8080, containerPort: 80, hostIP: 'localhost' }], code: 7, msg: /hostIP/ },
      { mappings: [{ hostPort: 8080, containerPort: 80, hostIP: '1.2.3.4 -j ACCEPT' }], code: 7, msg: /hostIP/ },
      { mappings: [{ hostPort: 8080, containerPort: 80 }], id: 'x -j ACCEPT', code: 4, msg: /CNI_CONTAINERID/ },
      { mappings: [{ hostPort: 8080, containerPort: 80 }], id: 'x"\n-A INPUT -j ACCEPT', code: 4, msg: /CNI_CONTAINERID/ },
      { mappings: [{ hostPort: 8080, containerPort: 80 }], name: "n'; flush ruleset", code: 7, msg: /network name/ },
    ];
    for (const c of cases) {
      const r = await runPlugin(
        w.host,
        portmapBin,
        { command: 'ADD', containerId: c.id ?? 'c1', ifname: 'eth0', netns: netnsPath(c1.ns) },
        { ...conf(w, c1, undefined), runtimeConfig: { portMappings: c.mappings }, ...(c.name && { name: c.name }) },
      );
      t.is(r.json?.code, c.code, JSON.stringify(c));
      t.regex(String(r.json?.msg), c.msg);
      t.not(r.exitCode, 0);
    }
    const conditions = await runPlugin(
      w.host,
      portmapBin,
      { command: 'ADD', containerId: 'c1', ifname: 'eth0', netns: netnsPath(c1.ns) },
      conf(w, c1, [{ hostPort: 8080, containerPort: 80 }], {
        conditionsV4: ['-s 1.2.3.4\n-A INPUT -j ACCEPT'],
      }),
    );
    t.is(conditions.json?.code, 7);
    t.is(await rulesetSnapshot(w.host), before);
    t.false(existsSync(join(w.stateDir, 'ports')) && readdirSync(join(w.stateDir, 'ports')).length > 0);
  });
}

test('an nftables backend requested where nft is missing: code 7, nothing changed', async (t) => {
  const w = await world(t, 'nftables');
  const c1 = await makeContainer(t, w.host, w.net, 2);
  const before = await rulesetSnapshot(w.host);
  const r = await runPlugin(
    w.host,
    portmapBin,
    { command: 'ADD', containerId: 'c1', ifname: 'eth0', netns: netnsPath(c1.ns), extraEnv: { PATH: '/usr/bin:/bin' } },
    conf(w, c1, [{ hostPort: 8080, containerPort: 80 }]),
  );
  t.is(r.json?.code, 7, r.stdout + r.stderr);
  t.regex(String(r.json?.msg), /nft is not installed/);
  t.is(await rulesetSnapshot(w.host), before);
});
