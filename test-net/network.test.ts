/** `ctnet network …` in a sandbox host with its own CTNET_ROOT, containers attached through `debug cni`. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { ctnet } from './debug-cli.js';
import { nftBin } from './firewall-fixtures.js';
import { connect, createNetns, createSandbox, netnsPath, nsRun, referenceCniDir, startServer, worldLink } from './sandbox.js';

interface Conflist {
  cniVersion: string;
  name: string;
  plugins: {
    type: string;
    bridge?: string;
    isGateway?: boolean;
    ipMasq?: boolean;
    mtu?: number;
    ipam?: Record<string, unknown>;
  }[];
}

const readConflist = (root: string, name: string) =>
  JSON.parse(readFileSync(join(root, 'networks', `${name}.conflist`), 'utf8')) as Conflist;

/** Attaches a fresh container namespace to `network` with the reference plugins; returns its netns name and address. */
async function attach(t: Parameters<typeof createNetns>[0], host: string, root: string, network: string, id: string) {
  const ns = await createNetns(t, id);
  const r = await ctnet(host, root, [
    'debug',
    'cni',
    'add',
    network,
    netnsPath(ns),
    '--containerid',
    id,
    '--cni-path',
    referenceCniDir,
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
  const address = (r.json as { ips: { address: string }[] }).ips[0]?.address.split('/')[0] as string;
  return { ns, address };
}

test('create writes a standard bridge + host-local + portmap conflist; ls and inspect show it; rm removes it', async (t) => {
  const sb = await createSandbox(t);
  const create = await ctnet(sb.host, sb.dir, [
    'network',
    'create',
    'web',
    '--subnet',
    '10.61.0.0/24',
    '--gateway',
    '10.61.0.254',
    '--ip-range',
    '10.61.0.128/25',
    '--mtu',
    '1400',
  ]);
  t.is(create.code, 0, create.stderr);
  t.is(create.stdout, 'web\n');
  const conf = readConflist(sb.dir, 'web');
  t.is(conf.name, 'web');
  t.deepEqual(
    conf.plugins.map((p) => p.type),
    ['bridge', 'portmap'],
  );
  const bridge = conf.plugins[0];
  t.is(bridge?.isGateway, true);
  t.is(bridge?.ipMasq, true);
  t.is(bridge?.mtu, 1400);
  t.deepEqual(bridge?.ipam?.ranges, [
    [{ subnet: '10.61.0.0/24', gateway: '10.61.0.254', rangeStart: '10.61.0.128', rangeEnd: '10.61.0.254' }],
  ]);
  t.is(bridge?.ipam?.type, 'host-local');

  const ls = await ctnet(sb.host, sb.dir, ['network', 'ls']);
  t.is(ls.code, 0, ls.stderr);
  t.regex(ls.stdout, /^NAME\s+BRIDGE\s+SUBNETS/);
  t.regex(ls.stdout, /^web\s+ctbr-[0-9a-f]{8}\s+10\.61\.0\.0\/24\s+no\s+0\s+bridge,portmap/m);
  const lsJson = await ctnet(sb.host, sb.dir, ['network', 'ls', '--json']);
  t.deepEqual(
    (lsJson.json as { name: string; subnets: string[] }[]).map((n) => [n.name, n.subnets]),
    [['web', ['10.61.0.0/24']]],
  );

  const inspect = await ctnet(sb.host, sb.dir, ['network', 'inspect', 'web', '--json']);
  t.is(inspect.code, 0, inspect.stderr);
  const [report] = inspect.json as { name: string; gateways: string[]; containers: unknown[]; config: Conflist }[];
  t.is(report?.name, 'web');
  t.deepEqual(report?.gateways, ['10.61.0.254']);
  t.deepEqual(report?.containers, []);

  const rm = await ctnet(sb.host, sb.dir, ['network', 'rm', 'web']);
  t.is(rm.code, 0, rm.stderr);
  t.false(existsSync(join(sb.dir, 'networks', 'web.conflist')));
  const gone = await ctnet(sb.host, sb.dir, ['network', 'inspect', 'web']);
  t.not(gone.code, 0);
  t.is(gone.stderr.split('\n')[0], 'ctnet: network "web" not found');
});

test('an overlapping subnet is refused, naming the other network or the host route', async (t) => {
  const sb = await createSandbox(t);
  t.is((await ctnet(sb.host, sb.dir, ['network', 'create', 'a', '--subnet', '10.62.0.0/16'])).code, 0);
  const clash = await ctnet(sb.host, sb.dir, ['network', 'create', 'b', '--subnet', '10.62.5.0/24']);
  t.not(clash.code, 0);
  t.regex(
    clash.stderr,
    /^ctnet: failed to create network "b": subnet 10\.62\.5\.0\/24 overlaps network "a" \(10\.62\.0\.0\/16\)$/m,
  );
  t.false(existsSync(join(sb.dir, 'networks', 'b.conflist')));

  await nsRun(sb.host, 'ip', ['link', 'add', 'vpn0', 'type', 'bridge']);
  await nsRun(sb.host, 'ip', ['link', 'set', 'vpn0', 'up']);
  await nsRun(sb.host, 'ip', ['route', 'add', '10.63.0.0/16', 'dev', 'vpn0']);
  const route = await ctnet(sb.host, sb.dir, ['network', 'create', 'c', '--subnet', '10.63.1.0/24']);
  t.not(route.code, 0);
  t.regex(route.stderr, /overlaps the host route 10\.63\.0\.0\/16 dev vpn0/);

  const dup = await ctnet(sb.host, sb.dir, ['network', 'create', 'a', '--subnet', '10.64.0.0/24']);
  t.not(dup.code, 0);
  t.regex(dup.stderr, /a network of that name exists/);
  const badGw = await ctnet(sb.host, sb.dir, ['network', 'create', 'd', '--subnet', '10.65.0.0/24', '--gateway', '10.66.0.1']);
  t.regex(badGw.stderr, /gateway 10\.66\.0\.1 is not a host address of 10\.65\.0\.0\/24/);
  const badOpt = await ctnet(sb.host, sb.dir, ['network', 'create', 'e', '-o', 'frobnicate=1']);
  t.regex(badOpt.stderr, /unknown option -o frobnicate/);
});

test('automatic subnets skip networks and host routes already there', async (t) => {
  const sb = await createSandbox(t);
  await nsRun(sb.host, 'ip', ['link', 'add', 'lan0', 'type', 'bridge']);
  await nsRun(sb.host, 'ip', ['addr', 'add', '10.90.0.5/24', 'dev', 'lan0']);
  await nsRun(sb.host, 'ip', ['link', 'set', 'lan0', 'up']);
  t.is((await ctnet(sb.host, sb.dir, ['network', 'create', 'one'])).code, 0);
  t.is((await ctnet(sb.host, sb.dir, ['network', 'create', 'two', '--ipv6'])).code, 0);
  const one = readConflist(sb.dir, 'one').plugins[0]?.ipam?.ranges as { subnet: string }[][];
  const two = readConflist(sb.dir, 'two').plugins[0]?.ipam?.ranges as { subnet: string }[][];
  t.is(one[0]?.[0]?.subnet, '10.90.1.0/24');
  t.is(two[0]?.[0]?.subnet, '10.90.2.0/24');
  t.regex(two[1]?.[0]?.subnet ?? '', /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/);
});

test('rm refuses while a container is attached and names it; inspect lists it with its address', async (t) => {
  const sb = await createSandbox(t);
  t.is(
    (await ctnet(sb.host, sb.dir, ['network', 'create', 'busy', '--subnet', '10.67.0.0/24', '-o', 'cniVersion=1.0.0'])).code,
    0,
  );
  const { ns, address } = await attach(t, sb.host, sb.dir, 'busy', 'ctr1');
  t.is(address, '10.67.0.2');

  const inspect = await ctnet(sb.host, sb.dir, ['network', 'inspect', 'busy']);
  t.is(inspect.code, 0, inspect.stderr);
  t.regex(inspect.stdout, /^Bridge:\s+ctbr-[0-9a-f]{8} \(up, 1 ports\)$/m);
  t.regex(inspect.stdout, /^CONTAINER\s+NAME\s+IFNAME\s+ADDRESSES/m);
  t.regex(inspect.stdout, /^ctr1\s+-\s+eth0\s+10\.67\.0\.2\s+\/run\/netns\/\S+\s+lease,cache$/m);

  const refused = await ctnet(sb.host, sb.dir, ['network', 'rm', 'busy']);
  t.not(refused.code, 0);
  t.is(refused.stderr.split('\n')[0], 'ctnet: failed to remove network "busy": 1 container is attached: ctr1 (10.67.0.2)');
  t.true(existsSync(join(sb.dir, 'networks', 'busy.conflist')));
  const prune = await ctnet(sb.host, sb.dir, ['network', 'prune']);
  t.is(prune.code, 0);
  t.is(prune.stdout, '', 'prune keeps a network in use');

  t.is(
    (
      await ctnet(sb.host, sb.dir, [
        'debug',
        'cni',
        'del',
        'busy',
        netnsPath(ns),
        '--containerid',
        'ctr1',
        '--cni-path',
        referenceCniDir,
      ])
    ).code,
    0,
  );
  const bridge = readConflist(sb.dir, 'busy').plugins[0]?.bridge as string;
  const rm = await ctnet(sb.host, sb.dir, ['network', 'prune']);
  t.is(rm.stdout, 'busy\n');
  t.false(existsSync(join(sb.dir, 'networks', 'busy.conflist')));
  t.false(existsSync(join(sb.dir, 'ipam', 'busy')), 'the lease directory goes with the network');
  const link = await nsRun(sb.host, 'ip', ['link', 'show', bridge], { allowFailure: true });
  t.not(link.code, 0, 'the idle bridge is deleted');
});

type Backend = 'iptables' | 'nftables';
type Sandbox = Awaited<ReturnType<typeof createSandbox>>;

async function createNetwork(t: ExecutionContext, sb: Sandbox, name: string, subnet: string, backend: Backend) {
  const r = await ctnet(sb.host, sb.dir, [
    'network',
    'create',
    name,
    '--subnet',
    subnet,
    '-o',
    'cniVersion=1.0.0',
    '-o',
    `firewall=${backend}`,
  ]);
  t.is(r.code, 0, r.stderr);
}

async function detach(sb: Sandbox, network: string, c: { ns: string }) {
  const id = c.ns.split('-').at(-1) as string;
  await ctnet(sb.host, sb.dir, [
    'debug',
    'cni',
    'del',
    network,
    netnsPath(c.ns),
    '--containerid',
    id,
    '--cni-path',
    referenceCniDir,
  ]);
}

/** Every isolation rule or element either backend holds in the sandbox host, as text (empty: none). */
async function isolationState(sb: Sandbox): Promise<string[]> {
  const out: string[] = [];
  for (const save of ['iptables-save', 'ip6tables-save']) {
    const r = await nsRun(sb.host, save, ['-t', 'filter']);
    out.push(...r.stdout.split('\n').filter((l) => l.includes('CTNET-ISOLATION')));
  }
  for (const set of ['isolated', 'isolated-self']) {
    const r = await nsRun(sb.host, nftBin, ['list', 'set', 'inet', 'ctnet', set], { allowFailure: true });
    out.push(...r.stdout.split('\n').filter((l) => l.includes('elements')));
  }
  return out;
}

/**
 * Two networks, red on `backends[0]` and blue on `backends[1]`: containers on one network reach each other and the
 * world, never the other network; disabling the isolation lets the same connection through; the networks' removal
 * leaves no isolation rule in either backend.
 */
async function isolationCase(t: ExecutionContext, backends: [Backend, Backend]) {
  const sb = await createSandbox(t, { world: true });
  await createNetwork(t, sb, 'red', '10.68.0.0/24', backends[0]);
  await createNetwork(t, sb, 'blue', '10.69.0.0/24', backends[1]);
  const red1 = await attach(t, sb.host, sb.dir, 'red', 'red1');
  const red2 = await attach(t, sb.host, sb.dir, 'red', 'red2');
  const blue1 = await attach(t, sb.host, sb.dir, 'blue', 'blue1');
  const attached: [string, { ns: string }][] = [
    ['red', red1],
    ['red', red2],
    ['blue', blue1],
  ];
  t.teardown(async () => {
    for (const [net, c] of attached) await detach(sb, net, c);
  });
  await startServer(t, red1.ns, 'tcp', '0.0.0.0', 8000);
  await startServer(t, blue1.ns, 'tcp', '0.0.0.0', 8000);
  await startServer(t, sb.world as string, 'tcp', '0.0.0.0', 8000);

  const isolated = async () => {
    t.is(await connect(red2.ns, 'tcp', red1.address, 8000), `from ${red2.address} hello`);
    t.regex(await connect(red2.ns, 'tcp', blue1.address, 8000), /^ERR/);
    t.regex(await connect(blue1.ns, 'tcp', red1.address, 8000), /^ERR/);
    t.regex(await connect(red2.ns, 'tcp', worldLink.worldAddr, 8000), /^from /, 'red reaches the world');
    t.regex(await connect(blue1.ns, 'tcp', worldLink.worldAddr, 8000), /^from /, 'blue reaches the world');
  };
  await isolated();
  t.true((await isolationState(sb)).length > 0, 'the isolation state is visible to the check at the end');

  // The isolation is what blocks it: without it the same connection goes through.
  await nsRun(sb.host, 'iptables', ['-D', 'FORWARD', '-j', 'CTNET-ISOLATION-1'], { allowFailure: true });
  await nsRun(sb.host, nftBin, ['flush', 'set', 'inet', 'ctnet', 'isolated'], { allowFailure: true });
  t.regex(await connect(red2.ns, 'tcp', blue1.address, 8000), /^from /);

  // Any change of the network list puts the isolation back as the networks need it.
  await createNetwork(t, sb, 'green', '10.70.0.0/24', backends[0]);
  await isolated();

  for (const [net, c] of attached.splice(0)) await detach(sb, net, c);
  for (const net of ['red', 'blue', 'green']) {
    const rm = await ctnet(sb.host, sb.dir, ['network', 'rm', net]);
    t.is(rm.code, 0, rm.stderr);
  }
  t.deepEqual(await isolationState(sb), [], 'removing the networks leaves no isolation rule');
}

for (const backend of ['iptables', 'nftables'] as const) {
  test(`${backend}: containers on different networks cannot reach each other, reach the world; removal leaves no rule`, (t) =>
    isolationCase(t, [backend, backend]));
}

test('a network on iptables and one on nftables are isolated from each other too', (t) =>
  isolationCase(t, ['iptables', 'nftables']));

test('an --internal network has no gateway and no route out', async (t) => {
  const sb = await createSandbox(t, { world: true });
  t.is(
    (
      await ctnet(sb.host, sb.dir, [
        'network',
        'create',
        'priv',
        '--internal',
        '--subnet',
        '10.70.0.0/24',
        '-o',
        'cniVersion=1.0.0',
      ])
    ).code,
    0,
  );
  const conf = readConflist(sb.dir, 'priv');
  t.deepEqual(
    conf.plugins.map((p) => p.type),
    ['bridge'],
    'no portmap on an internal network',
  );
  const a = await attach(t, sb.host, sb.dir, 'priv', 'i1');
  const b = await attach(t, sb.host, sb.dir, 'priv', 'i2');
  const routes = await nsRun(a.ns, 'ip', ['-j', 'route', 'show']);
  t.false((JSON.parse(routes.stdout) as { dst: string }[]).some((r) => r.dst === 'default'));
  await startServer(t, b.ns, 'tcp', '0.0.0.0', 8000);
  t.is(await connect(a.ns, 'tcp', b.address, 8000), `from ${a.address} hello`);
  t.regex(await connect(a.ns, 'tcp', '198.18.0.2', 8000), /^ERR/);
});
