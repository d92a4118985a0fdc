/**
 * Runtime state belongs to the network namespace it describes: two sandbox hosts on one machine both publish host
 * port 8080 with portmap's default state (under CTNET_RUN_DIR, one directory per namespace, named by its cookie),
 * while inside one namespace the second claim of 8080 is still refused. And DEL with a config ADD would refuse
 * (containerd's mappings before they decoded, a broken ipam section) still removes everything it can identify.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { fakePrevResult, makeBridge, makeContainer, nftBin } from './firewall-fixtures.js';
import {
  cniBinDir,
  connect,
  createNetns,
  createSandbox,
  netnsPath,
  nsRun,
  runPlugin,
  startServer,
  tempDir,
  worldLink,
} from './sandbox.js';

const portmapBin = join(cniBinDir, 'portmap');

async function host(t: ExecutionContext, runDir: string) {
  const sb = await createSandbox(t, { world: true });
  const net = await makeBridge(sb.host);
  const c = await makeContainer(t, sb.host, net, 2);
  await startServer(t, c.ns, 'tcp', '0.0.0.0', 80);
  const conf = (mappings: unknown) => ({
    cniVersion: '1.0.0',
    name: 'net1',
    type: 'portmap',
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings: mappings },
    prevResult: fakePrevResult(net, c),
  });
  const call = (command: 'ADD' | 'DEL', id: string, mappings: unknown) =>
    runPlugin(
      sb.host,
      portmapBin,
      { command, containerId: id, ifname: 'eth0', netns: netnsPath(c.ns), extraEnv: { CTNET_RUN_DIR: runDir } },
      conf(mappings),
    );
  return { sb, c, call };
}

test('two network namespaces both publish 8080; within one, the port is still claimed once', async (t) => {
  const runDir = tempDir(t, 'run');
  const [a, b] = await Promise.all([host(t, runDir), host(t, runDir)]);
  const m8080 = [{ HostPort: 8080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }];
  for (const h of [a, b]) {
    const r = await h.call('ADD', 'pod1', m8080);
    t.is(r.exitCode, 0, r.stdout);
  }
  const dirs = readdirSync(join(runDir, 'portmap'));
  t.is(dirs.length, 2, 'one state directory per namespace');
  t.true(dirs.every((d) => /^netns-\d+$/.test(d)));
  for (const h of [a, b])
    t.is(await connect(h.sb.world as string, 'tcp', worldLink.hostAddr, 8080), `from ${worldLink.worldAddr} hello`);
  const again = await a.call('ADD', 'pod2', m8080);
  t.is(again.exitCode, 1);
  t.is(again.json?.code, 101, again.stdout);
  for (const h of [a, b]) t.is((await h.call('DEL', 'pod1', m8080)).exitCode, 0);
  for (const d of dirs) t.deepEqual(readdirSync(join(runDir, 'portmap', d, 'ports')), []);
});

test('portmap DEL with mappings ADD refuses still removes the forwards and the claims', async (t) => {
  const runDir = tempDir(t, 'run');
  const h = await host(t, runDir);
  t.is((await h.call('ADD', 'pod1', [{ hostPort: 8080, containerPort: 80 }])).exitCode, 0);
  const broken = [{ hostPort: 'eighty', ContainerPort: null }];
  const del = await h.call('DEL', 'pod1', broken);
  t.is(del.exitCode, 0, del.stdout);
  const nat = (await nsRun(h.sb.host, 'iptables-save', ['-t', 'nat'])).stdout;
  t.false(/id=pod1/.test(nat), nat);
  const [dir] = readdirSync(join(runDir, 'portmap'));
  t.deepEqual(readdirSync(join(runDir, 'portmap', dir as string, 'ports')), []);
  t.is(await connect(h.sb.world as string, 'tcp', worldLink.hostAddr, 8080), 'ERR ECONNREFUSED');
});

test('bridge DEL with a config ADD refuses still releases the lease and removes the veth and masquerade rules', async (t) => {
  const sb = await createSandbox(t);
  const c = await createNetns(t, 'c');
  const dataDir = join(sb.dir, 'ipam');
  const conf = {
    cniVersion: '1.0.0',
    name: 'net1',
    type: 'bridge',
    bridge: 'ctdbr0',
    isGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.66.0.0/24' }]] },
  };
  const call = (command: 'ADD' | 'DEL', stdin: unknown) =>
    runPlugin(sb.host, join(cniBinDir, 'bridge'), { command, containerId: 'pod1', ifname: 'eth0', netns: netnsPath(c) }, stdin);
  const add = await call('ADD', conf);
  t.is(add.exitCode, 0, add.stdout);
  t.true(existsSync(join(dataDir, 'net1', '10.66.0.2')));
  // Wrong types, a subnet that does not parse, an unknown backend: ADD would refuse every one of them.
  const broken = {
    ...conf,
    ipMasq: 'yes',
    mtu: 'big',
    ipMasqBackend: 'pf',
    ipam: { ...conf.ipam, ranges: [[{ subnet: 'bad' }]] },
  };
  t.is((await call('ADD', { ...broken, cniVersion: '1.0.0' })).json?.code, 7);
  const del = await call('DEL', broken);
  t.is(del.exitCode, 0, del.stdout);
  t.false(existsSync(join(dataDir, 'net1', '10.66.0.2')), 'the lease is released');
  t.is((await nsRun(c, 'ip', ['-o', 'link', 'show', 'eth0'], { allowFailure: true })).code !== 0, true, 'the veth is gone');
  const nat =
    (await nsRun(sb.host, 'iptables-save', ['-t', 'nat'])).stdout + (await nsRun(sb.host, nftBin, ['list', 'ruleset'])).stdout;
  t.false(/pod1|10\.66\.0\.2/.test(nat), nat);
});
