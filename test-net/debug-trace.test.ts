/** `ctnet debug trace` names the right hop when each hop of a published path is broken on purpose. */
import test from 'ava';
import { ctnet } from './debug-cli.js';
import { nftBin } from './firewall-fixtures.js';
import {
  cniBinDir,
  connect,
  createNetns,
  createSandbox,
  netnsPath,
  nsRun,
  referenceCniDir,
  startServer,
  worldLink,
} from './sandbox.js';

interface TraceJson {
  hops: { name: string; status: string; detail: string; hint?: string }[];
  firstBroken?: number;
}

const traceScenario = test.macro(async (t, plugins: 'reference' | 'ctnet', firewall: 'iptables' | 'nftables' = 'iptables') => {
  const cniPath = plugins === 'reference' ? referenceCniDir : cniBinDir;
  const version = plugins === 'reference' ? '1.0.0' : '1.1.0';
  const sb = await createSandbox(t, { world: true });
  const ctr = await createNetns(t, 'web');
  const net = await ctnet(sb.host, sb.dir, [
    'network',
    'create',
    'tr',
    '--subnet',
    '10.72.0.0/24',
    '-o',
    `cniVersion=${version}`,
    '-o',
    `firewall=${firewall}`,
  ]);
  t.is(net.code, 0, net.stderr);
  const add = await ctnet(sb.host, sb.dir, [
    'debug',
    'cni',
    'add',
    'tr',
    netnsPath(ctr),
    '--containerid',
    'web',
    '--cni-path',
    cniPath,
    '--cap',
    'portMappings=[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]',
  ]);
  t.is(add.code, 0, add.stderr);
  const ip = '10.72.0.2';
  const bridge = (
    JSON.parse((await nsRun(sb.host, 'ip', ['-j', 'link', 'show', 'type', 'bridge'])).stdout) as { ifname: string }[]
  )[0]?.ifname as string;
  const veth = (
    JSON.parse((await nsRun(sb.host, 'ip', ['-j', 'link', 'show', 'master', bridge])).stdout) as { ifname: string }[]
  )[0]?.ifname as string;
  let server = await startServer(t, ctr, 'tcp', '0.0.0.0', 80);

  // The path works for real, and trace agrees.
  t.is(await connect(sb.world as string, 'tcp', worldLink.hostAddr, 18080), `from ${worldLink.worldAddr} hello`);
  const trace = () => ctnet(sb.host, sb.dir, ['debug', 'trace', 'web', '18080', '--json']);
  const healthy = await trace();
  t.is(healthy.code, 0, healthy.stderr);
  t.is((healthy.json as TraceJson).firstBroken, undefined);
  const fromHost = await ctnet(sb.host, sb.dir, ['debug', 'trace', 'web', '18080', '--from', 'host']);
  t.is(fromHost.code, 0, fromHost.stderr);
  t.regex(fromHost.stdout, /every hop is in place/);

  const expectBroken = async (hop: string, detail: RegExp) => {
    const r = await trace();
    const report = r.json as TraceJson;
    t.is(r.code, 1, `trace should fail at ${hop}`);
    const named = report.hops[report.firstBroken ?? -1];
    t.is(named?.name, hop);
    t.regex(named?.detail ?? '', detail);
    t.truthy(named?.hint, `hop ${hop} has a hint`);
    t.regex(r.stderr, new RegExp(`^ctnet: broken at hop \\d+ \\(${hop}\\): `));
  };

  // 1. The DNAT rules deleted, then put back as they were.
  if (firewall === 'iptables') {
    const save = (await nsRun(sb.host, 'iptables-save', ['-t', 'nat'])).stdout;
    const dnat = save.split('\n').find((l) => l.includes(`--to-destination ${ip}:80`)) as string;
    // Through iptables-restore, which parses the quoted comment the way iptables-save printed it.
    await nsRun(sb.host, 'iptables-restore', ['--noflush'], { input: `*nat\n${dnat.replace(/^-A /, '-D ')}\nCOMMIT\n` });
    await expectBroken('dnat rule', /no nat rule DNATs tcp port 18080/);
    await nsRun(sb.host, 'iptables-restore', ['--noflush'], { input: `*nat\n${dnat}\nCOMMIT\n` });
  } else {
    // The published port is an element of the DNAT map: delete it, then add it back as it was listed.
    const map = (await nsRun(sb.host, nftBin, ['list', 'map', 'inet', 'ctnet', 'fwd4'])).stdout;
    const element = map.match(new RegExp(`tcp \\. 18080 comment "[^"]*" : ${ip.replaceAll('.', '\\.')} \\. 80`))?.[0];
    t.truthy(element, map);
    await nsRun(sb.host, nftBin, ['delete', 'element', 'inet', 'ctnet', 'fwd4', '{ tcp . 18080 }']);
    await expectBroken('dnat rule', /no nat rule DNATs tcp port 18080/);
    await nsRun(sb.host, nftBin, ['add', 'element', 'inet', 'ctnet', 'fwd4', `{ ${element} }`]);
  }

  // 2. Forwarding off.
  await nsRun(sb.host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
  await expectBroken('forwarding', /net\.ipv4\.ip_forward is 0/);
  await nsRun(sb.host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);

  // 3. The bridge down.
  await nsRun(sb.host, 'ip', ['link', 'set', bridge, 'down']);
  await expectBroken('bridge', new RegExp(`bridge ${bridge} is down`));
  await nsRun(sb.host, 'ip', ['link', 'set', bridge, 'up']);

  // 4. The host veth down.
  await nsRun(sb.host, 'ip', ['link', 'set', veth, 'down']);
  await expectBroken('host veth', new RegExp(`${veth} is down`));
  await nsRun(sb.host, 'ip', ['link', 'set', veth, 'up']);

  // 5. The veth detached from the bridge.
  await nsRun(sb.host, 'ip', ['link', 'set', veth, 'nomaster']);
  await expectBroken('veth on bridge', /not enslaved to any bridge/);
  await nsRun(sb.host, 'ip', ['link', 'set', veth, 'master', bridge]);

  // 6. The address removed in the container.
  await nsRun(ctr, 'ip', ['addr', 'del', `${ip}/24`, 'dev', 'eth0']);
  await expectBroken('address', new RegExp(`${ip.replaceAll('.', '\\.')} is not on eth0`));
  await nsRun(ctr, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  await nsRun(ctr, 'ip', ['route', 'add', 'default', 'via', '10.72.0.1']);

  // 7. Nothing listening.
  server.process.kill('SIGKILL');
  await new Promise((r) => server.process.once('exit', r));
  await expectBroken('listening', /nothing in web listens on tcp port 80/);

  // Everything restored: healthy again, and traffic flows again.
  server = await startServer(t, ctr, 'tcp', '0.0.0.0', 80);
  t.is((await trace()).code, 0);
  t.is(await connect(sb.world as string, 'tcp', worldLink.hostAddr, 18080), `from ${worldLink.worldAddr} hello`);

  // A port nobody publishes is the first hop.
  const unpublished = await ctnet(sb.host, sb.dir, ['debug', 'trace', 'web', '9999']);
  t.is(unpublished.code, 1);
  t.regex(unpublished.stderr, /broken at hop 1 \(mapping\): web does not publish 9999\/tcp/);
  await ctnet(sb.host, sb.dir, ['debug', 'cni', 'del', 'tr', netnsPath(ctr), '--containerid', 'web', '--cni-path', cniPath]);
});

test('trace with the reference plugins: each hop broken on purpose is the one named', traceScenario, 'reference');
test('trace with ctnet plugins on iptables: each hop broken on purpose is the one named', traceScenario, 'ctnet');
test('trace with ctnet plugins on nftables: each hop broken on purpose is the one named', traceScenario, 'ctnet', 'nftables');

test('trace: a port published on 127.0.0.1 only is unreachable from the world (named), and fine from the host', async (t) => {
  const sb = await createSandbox(t, { world: true });
  const ctr = await createNetns(t, 'lo');
  t.is((await ctnet(sb.host, sb.dir, ['network', 'create', 'lb', '--subnet', '10.73.0.0/24'])).code, 0);
  const add = await ctnet(sb.host, sb.dir, [
    'debug',
    'cni',
    'add',
    'lb',
    netnsPath(ctr),
    '--containerid',
    'loc',
    '--cni-path',
    cniBinDir,
    '--cap',
    'portMappings=[{"hostPort":18081,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]',
  ]);
  t.is(add.code, 0, add.stderr);
  await startServer(t, ctr, 'tcp', '0.0.0.0', 80);
  t.regex(await connect(sb.host, 'tcp', '127.0.0.1', 18081), /hello$/, 'the host reaches it through 127.0.0.1');

  const fromWorld = await ctnet(sb.host, sb.dir, ['debug', 'trace', 'loc', '18081', '--json']);
  t.is(fromWorld.code, 1);
  const report = fromWorld.json as TraceJson;
  t.is(report.hops[report.firstBroken ?? -1]?.name, 'host address');
  t.regex(report.hops[report.firstBroken ?? -1]?.detail ?? '', /published on 127\.0\.0\.1 only/);

  const fromHost = await ctnet(sb.host, sb.dir, ['debug', 'trace', 'loc', '18081', '--from', 'host']);
  t.is(fromHost.code, 0, fromHost.stderr);
  t.regex(fromHost.stdout, /host address\s+ok\s+only connections to 127\.0\.0\.1 are forwarded/);
  await ctnet(sb.host, sb.dir, ['debug', 'cni', 'del', 'lb', netnsPath(ctr), '--containerid', 'loc', '--cni-path', cniBinDir]);
});
