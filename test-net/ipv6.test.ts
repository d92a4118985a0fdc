/**
 * IPv6 as a first-class path, run for real on a dual-stack sandbox: the world and the host have IPv6 on their
 * link, containers run on a `--ipv6` network, and v6 TCP and UDP go through published ports. `debug trace` is
 * checked on the v4 and v6 paths, healthy and broken on purpose; the CLI's output is Docker's; the bridge's v6
 * gateway is usable as soon as `run -d` returns; forged router advertisements are ignored; [::1] is refused at
 * once; a v6 host address on an IPv4-only network is refused. Addresses: documentation ranges only.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { run } from '../core/index.js';
import { addWorldV6, nftBin, worldLink6 } from './firewall-fixtures.js';
import { busyboxRootfs, ctnet, ensureInitHelper, inspect, leftovers, nothingLeft, runnerEnv } from './runner-helpers.js';
import { connect, createSandbox, nsRun, worldLink } from './sandbox.js';

test.before(ensureInitHelper);

interface TraceJson {
  from: string;
  hops: { name: string; status: string; detail: string; hint?: string }[];
  firstBroken?: number;
}

/** TCP and UDP echo servers on :: (both families) that name the client: "tcp <address> <message>". */
const server = [
  "const net=require('net'),dgram=require('dgram');",
  "net.createServer(c=>c.on('data',m=>c.end('tcp '+c.remoteAddress.replace(/^::ffff:/,'')+' '+m))).listen(80,'::');",
  "const u=dgram.createSocket('udp6');u.on('message',(m,r)=>u.send('udp '+r.address.replace(/^::ffff:/,'')+' '+m,r.port,r.address));u.bind(53,'::');",
].join('');

/** A network namespace given by path (a container's), as nsRun does for named ones. */
function inNetns(path: string, cmd: string, args: string[]) {
  return run('nsenter', [`--net=${path}`, cmd, ...args], { allowFailure: true, timeoutMs: 30_000 });
}

async function dualStackSandbox(t: ExecutionContext) {
  const sb = await createSandbox(t, { world: true });
  await addWorldV6(sb.host, sb.world as string);
  return { sb, renv: runnerEnv(t, sb.host), world: sb.world as string };
}

/** Polls until `probe` answers like `expected` (a server in a detached container takes a moment to listen). */
async function until(probe: () => Promise<string>, expected: RegExp, tries = 50): Promise<string> {
  let last = '';
  for (let i = 0; i < tries; i++) {
    last = await probe();
    if (expected.test(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

const dualStack = test.macro(async (t, firewall: 'iptables' | 'nftables') => {
  const { sb, renv, world } = await dualStackSandbox(t);
  const net = await ctnet(renv, [
    'network',
    'create',
    'ds',
    '--ipv6',
    '--subnet',
    '10.131.0.0/24',
    '--subnet',
    'fd00:131::/64',
    '-o',
    `firewall=${firewall}`,
  ]);
  t.is(net.code, 0, net.stderr);
  const pub = ['-p', '8080:80', '-p', '8053:53/udp', '-p', `[${worldLink6.hostAddr}]:8081:80`];
  await ctnet(renv, ['run', '-d', '--name', 'w1', '--network', 'ds', ...pub, 'default', 'node', '-e', server]);

  // The network's first container: its v6 gateway is valid the moment run returns (added without DAD).
  const view = await inspect(renv, 'w1');
  const bridge = (
    JSON.parse((await nsRun(sb.host, 'ip', ['-j', '-6', 'addr', 'show', 'to', 'fd00:131::1'])).stdout) as {
      ifname: string;
      addr_info: { local: string; tentative?: boolean; nodad?: boolean }[];
    }[]
  )[0];
  const gw = bridge?.addr_info.find((a) => a.local === 'fd00:131::1');
  t.truthy(gw, 'the bridge has the v6 gateway');
  t.falsy(gw?.tentative, 'the v6 gateway is not tentative');
  t.true(gw?.nodad, 'added without DAD');

  // Docker's output for a dual-stack container.
  t.is(view.NetworkSettings.IPAddress, '10.131.0.2');
  const settings = view.NetworkSettings as unknown as Record<string, unknown>;
  t.is(settings.GlobalIPv6Address, 'fd00:131::2');
  t.is(settings.GlobalIPv6PrefixLen, 64);
  t.is(settings.IPv6Gateway, 'fd00:131::1');
  const onNet = (settings.Networks as Record<string, Record<string, unknown>>).ds;
  t.is(onNet?.GlobalIPv6Address, 'fd00:131::2');
  t.is(onNet?.IPv6Gateway, 'fd00:131::1');
  t.deepEqual(view.NetworkSettings.Ports, {
    '80/tcp': [
      { HostIp: '0.0.0.0', HostPort: '8080' },
      { HostIp: '::', HostPort: '8080' },
      { HostIp: worldLink6.hostAddr, HostPort: '8081' },
    ],
    '53/udp': [
      { HostIp: '0.0.0.0', HostPort: '8053' },
      { HostIp: '::', HostPort: '8053' },
    ],
  });
  t.is(
    (await ctnet(renv, ['port', 'w1'])).stdout,
    [
      '80/tcp -> 0.0.0.0:8080',
      '80/tcp -> [::]:8080',
      '53/udp -> 0.0.0.0:8053',
      '53/udp -> [::]:8053',
      `80/tcp -> [${worldLink6.hostAddr}]:8081`,
      '',
    ].join('\n'),
  );
  t.is((await ctnet(renv, ['port', 'w1', '80'])).stdout, `0.0.0.0:8080\n[::]:8080\n[${worldLink6.hostAddr}]:8081\n`);
  t.regex(
    (await ctnet(renv, ['ps'])).stdout,
    /0\.0\.0\.0:8080->80\/tcp, \[::\]:8080->80\/tcp, .*\[2001:db8:ff::1\]:8081->80\/tcp/,
  );

  // v6 and v4, TCP and UDP, from the world through the published ports; the client's address is kept.
  const v6 = worldLink6.worldAddr;
  t.is(await until(() => connect(world, 'tcp', worldLink6.hostAddr, 8080), /^tcp/), `tcp ${v6} hello`);
  t.is(await connect(world, 'tcp', worldLink6.hostAddr, 8081), `tcp ${v6} hello`);
  t.is(await until(() => connect(world, 'udp', worldLink6.hostAddr, 8053), /^udp/, 10), `udp ${v6} hello`);
  t.is(await connect(world, 'tcp', worldLink.hostAddr, 8080), `tcp ${worldLink.worldAddr} hello`);
  t.is(await until(() => connect(world, 'udp', worldLink.hostAddr, 8053), /^udp/, 10), `udp ${worldLink.worldAddr} hello`);
  t.regex(await connect(sb.host, 'tcp', '127.0.0.1', 8080), /^tcp .* hello$/, 'the host through 127.0.0.1');
  t.regex(await connect(sb.host, 'tcp', worldLink6.hostAddr, 8080), /^tcp .* hello$/, 'the host through its v6 address');

  // [::1] is left to the host's own stack: refused at once, not DNATed into a hang (the client says
  // "ERR timeout" after 3 s of silence).
  t.is(await connect(sb.host, 'tcp', '::1', 8080), 'ERR ECONNREFUSED');

  // trace: healthy on both paths, each reading its own family's state. Many calls: the built CLI starts faster.
  const trace = async (port: string, from: string) => {
    const r = await ctnet(renv, ['debug', 'trace', 'w1', port, '--from', from, '--json'], { allowFailure: true, bundle: true });
    return { code: r.code, report: JSON.parse(r.stdout) as TraceJson, stderr: r.stderr };
  };
  const hop = (report: TraceJson, name: string) => report.hops.find((h) => h.name === name)?.detail ?? '';
  const healthy = async (port: string, from: string, family: 4 | 6) => {
    const { code, report } = await trace(port, from);
    t.is(code, 0, `${from} -> ${port}: ${JSON.stringify(report.hops[report.firstBroken ?? -1])}`);
    t.is(report.firstBroken, undefined);
    t.regex(hop(report, 'forwarding'), family === 6 ? /net\.ipv6\.conf\.all\.forwarding = 1/ : /net\.ipv4\.ip_forward = 1/);
    t.regex(hop(report, 'address'), family === 6 ? /^fd00:131::2\/64 on eth0/ : /^10\.131\.0\.2\/24 on eth0/);
    t.regex(hop(report, 'dnat target'), family === 6 ? /^-> \[fd00:131::2\]:(80|53)$/ : /^-> 10\.131\.0\.2:(80|53)$/);
    if (firewall === 'nftables') t.regex(hop(report, 'dnat rule'), family === 6 ? /@fwd6/ : /@fwd4/);
  };
  await healthy('8080', v6, 6);
  await healthy('8081', v6, 6);
  await healthy('8053/udp', v6, 6);
  await healthy('8080', worldLink.worldAddr, 4);
  // Without --from, a port published on a v6 address only is traced from a v6 client.
  const implicit = await ctnet(renv, ['debug', 'trace', 'w1', '8081', '--json'], { bundle: true });
  t.regex((JSON.parse(implicit.stdout) as TraceJson).from, /:/);

  const expectBroken = async (port: string, from: string, name: string, detail: RegExp) => {
    const { code, report, stderr } = await trace(port, from);
    t.is(code, 1, `trace ${port} from ${from} should fail at ${name}`);
    const broken = report.hops[report.firstBroken ?? -1];
    t.is(broken?.name, name);
    t.regex(broken?.detail ?? '', detail);
    t.truthy(broken?.hint);
    t.regex(stderr, new RegExp(`broken at hop \\d+ \\(${name}\\)`));
  };
  // The other family's client, and [::1], are named at the host address.
  await expectBroken('8081', worldLink.worldAddr, 'host address', /published on 2001:db8:ff::1 only: an IPv4 client/);
  await expectBroken('8080', '::1', 'host address', /\[::1\]:8080 is not forwarded/);

  // Broken on purpose, each on the v6 path only: v6 names it, v4 stays healthy.
  await nsRun(sb.host, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=0']);
  await expectBroken('8080', v6, 'forwarding', /net\.ipv6\.conf\.all\.forwarding is 0/);
  await healthy('8080', worldLink.worldAddr, 4);
  await nsRun(sb.host, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);

  if (firewall === 'nftables') {
    const map = (await nsRun(sb.host, nftBin, ['list', 'map', 'inet', 'ctnet', 'fwd6'])).stdout;
    const element = map.match(/tcp \. 8080 comment "[^"]*" : fd00:131::2 \. 80/)?.[0];
    t.truthy(element, map);
    await nsRun(sb.host, nftBin, ['delete', 'element', 'inet', 'ctnet', 'fwd6', '{ tcp . 8080 }']);
    await expectBroken('8080', v6, 'dnat rule', /no IPv6 nat rule DNATs tcp port 8080/);
    await healthy('8080', worldLink.worldAddr, 4);
    await nsRun(sb.host, nftBin, ['add', 'element', 'inet', 'ctnet', 'fwd6', `{ ${element} }`]);
  } else {
    const save = (await nsRun(sb.host, 'ip6tables-save', ['-t', 'nat'])).stdout;
    const dnat = save.split('\n').find((l) => l.includes('--dport 8080') && l.includes('--to-destination [fd00:131::2]:80'));
    t.truthy(dnat, save);
    await nsRun(sb.host, 'ip6tables-restore', ['--noflush'], { input: `*nat\n${dnat?.replace(/^-A /, '-D ')}\nCOMMIT\n` });
    await expectBroken('8080', v6, 'dnat rule', /no IPv6 nat rule DNATs tcp port 8080/);
    await healthy('8080', worldLink.worldAddr, 4);
    await nsRun(sb.host, 'ip6tables-restore', ['--noflush'], { input: `*nat\n${dnat}\nCOMMIT\n` });
  }

  const sandboxKey = view.NetworkSettings.SandboxKey;
  await inNetns(sandboxKey, 'ip', ['addr', 'del', 'fd00:131::2/64', 'dev', 'eth0']);
  await expectBroken('8080', v6, 'address', /fd00:131::2 is not on eth0 in w1/);
  await healthy('8080', worldLink.worldAddr, 4);
  await inNetns(sandboxKey, 'ip', ['addr', 'add', 'fd00:131::2/64', 'dev', 'eth0', 'nodad']);
  await inNetns(sandboxKey, 'ip', ['-6', 'route', 'replace', 'default', 'via', 'fd00:131::1', 'dev', 'eth0']);

  // Everything restored: healthy again, and v6 traffic flows again.
  await healthy('8080', v6, 6);
  t.is(await connect(world, 'tcp', worldLink6.hostAddr, 8080), `tcp ${v6} hello`);

  await ctnet(renv, ['rm', '-f', 'w1']);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test(
  'dual stack on nftables: v6 TCP/UDP through published ports, Docker output, trace healthy and broken per family',
  dualStack,
  'nftables',
);
test(
  'dual stack on iptables: v6 TCP/UDP through published ports, Docker output, trace healthy and broken per family',
  dualStack,
  'iptables',
);

/** A router advertisement for 2001:db8:bad::/64 (on-link, autonomous) from a default router of 30 minutes. */
const forgedRa = Buffer.from(
  [
    '86000000 40000708 00000000 00000000', // type 134, hop limit 64, router lifetime 1800 s
    '030440c0 00000e10 00000e10 00000000', // prefix information: /64, on-link + autonomous, 1 h
    '20010db8 0bad0000 00000000 00000000', // 2001:db8:bad::
  ]
    .join('')
    .replaceAll(' ', ''),
  'hex',
);

test('a router advertisement forged by one container changes nothing in its neighbours (dual-stack and IPv4-only)', async (t) => {
  const { renv } = await dualStackSandbox(t);
  t.is(forgedRa.length, 48);
  const raFile = join(renv.root, 'ra.bin');
  writeFileSync(raFile, forgedRa);
  t.is(
    (await ctnet(renv, ['network', 'create', 'ra6', '--ipv6', '--subnet', '10.132.0.0/24', '--subnet', 'fd00:132::/64'])).code,
    0,
  );
  t.is((await ctnet(renv, ['network', 'create', 'ra4', '--subnet', '10.133.0.0/24'])).code, 0);
  const keys: Record<string, string> = {};
  for (const [name, network] of [
    ['a1', 'ra6'],
    ['a2', 'ra6'],
    ['b1', 'ra4'],
    ['b2', 'ra4'],
  ] as const) {
    await ctnet(renv, ['run', '-d', '--name', name, '--network', network, 'default', 'sleep', '300']);
    keys[name] = (await inspect(renv, name)).NetworkSettings.SandboxKey;
  }
  const key = (name: string) => keys[name] as string;
  const sendRa = async (from: string) => {
    const r = await inNetns(key(from), 'socat', [
      '-u',
      `FILE:${raFile}`,
      // Hop limit 255 (unicast and multicast), as a receiver demands of neighbour discovery.
      'IP6-SENDTO:[ff02::1%eth0]:58,setsockopt-int=41:18:255,setsockopt-int=41:16:255',
    ]);
    t.is(r.code, 0, r.stderr);
    await new Promise((r) => setTimeout(r, 500));
  };
  const state = async (name: string) => {
    const [addr, route, ra] = await Promise.all([
      inNetns(key(name), 'ip', ['-6', 'addr', 'show', 'dev', 'eth0']),
      inNetns(key(name), 'ip', ['-6', 'route', 'show']),
      inNetns(key(name), 'cat', ['/proc/sys/net/ipv6/conf/eth0/accept_ra']),
    ]);
    const received = Number(
      /Icmp6InRouterAdvertisements\s+(\d+)/.exec((await inNetns(key(name), 'cat', ['/proc/net/snmp6'])).stdout)?.[1],
    );
    return { addr: addr.stdout, route: route.stdout, acceptRa: ra.stdout.trim(), received };
  };
  for (const name of ['a1', 'a2', 'b1', 'b2']) t.is((await state(name)).acceptRa, '0', `${name} accept_ra`);

  // Dual-stack: a1 advertises itself as a router with a rogue prefix; a2 receives it and ignores it.
  const before = await state('a2');
  await sendRa('a1');
  const after = await state('a2');
  t.true(after.received > before.received, 'a2 received the advertisement');
  t.notRegex(after.addr, /2001:db8:bad/);
  t.is(after.route, before.route, 'no route added');
  // The same advertisement does take effect where RAs are accepted: the test's RA is a real one.
  await inNetns(key('a2'), 'sysctl', ['-qw', 'net.ipv6.conf.eth0.accept_ra=1']);
  await sendRa('a1');
  t.regex(await until(async () => (await state('a2')).addr, /2001:db8:bad/, 20), /2001:db8:bad/);

  // IPv4-only: the interfaces have no link-local address, yet would still take an RA (b1 gives itself one to send).
  await inNetns(key('b1'), 'ip', ['addr', 'add', 'fe80::bad/64', 'dev', 'eth0', 'nodad']);
  const b2Before = await state('b2');
  await sendRa('b1');
  const b2After = await state('b2');
  t.true(b2After.received > b2Before.received, 'b2 received the advertisement');
  t.notRegex(b2After.addr, /2001:db8:bad/);
  t.is(b2After.route, b2Before.route, 'no route added');
  await ctnet(renv, ['rm', '-f', 'a1', 'a2', 'b1', 'b2']);
});

test('-p [v6]:PORT:PORT on an IPv4-only network is refused with a clear message, and nothing is left', async (t) => {
  const { renv } = await dualStackSandbox(t);
  const image = await busyboxRootfs(t);
  t.is((await ctnet(renv, ['network', 'create', 'only4', '--subnet', '10.134.0.0/24'])).code, 0);
  const r = await ctnet(
    renv,
    ['run', '-d', '--name', 'v6pub', '--network', 'only4', '-p', `[${worldLink6.hostAddr}]:8084:80`, image, 'sleep', '30'],
    {
      allowFailure: true,
    },
  );
  t.not(r.code, 0);
  t.regex(
    r.stderr,
    /failed to publish \[2001:db8:ff::1\]:8084\/tcp: the container has no IPv6 address to forward it to \(its network is IPv4-only\)/,
  );
  t.regex(r.stderr, /hint: .*network create --ipv6/);
  t.deepEqual(leftovers(renv), nothingLeft);
  t.is((await ctnet(renv, ['ps', '-a', '-q'])).stdout, '');
  // The same on a dual-stack network is accepted.
  t.is(
    (await ctnet(renv, ['network', 'create', 'both', '--ipv6', '--subnet', '10.135.0.0/24', '--subnet', 'fd00:135::/64'])).code,
    0,
  );
  const ok = await ctnet(renv, [
    'run',
    '-d',
    '--name',
    'v6ok',
    '--network',
    'both',
    '-p',
    `[${worldLink6.hostAddr}]:8084:80`,
    image,
    'sleep',
    '30',
  ]);
  t.is(ok.code, 0, ok.stderr);
  t.is((await ctnet(renv, ['port', 'v6ok'])).stdout, `80/tcp -> [${worldLink6.hostAddr}]:8084\n`);
  await ctnet(renv, ['rm', '-f', 'v6ok']);
  t.deepEqual(leftovers(renv), nothingLeft);
});
