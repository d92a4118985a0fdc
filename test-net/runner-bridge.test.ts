/**
 * The runner with the default bridge network ("ctnet" on ctnet0, host-local, portmap), run for
 * real in a sandbox host namespace wired to a world namespace.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { run } from '../core/index.js';
import {
  assertAllReleased,
  busyboxRootfs,
  ctnet,
  ensureInitHelper,
  inspect,
  leftovers,
  nothingLeft,
  runnerEnv,
  settledSnapshot,
  snapshot,
} from './runner-helpers.js';
import { connect, createSandbox, nsRun, repoRoot, worldLink } from './sandbox.js';

test.before(ensureInitHelper);

const request = 'GET /hello HTTP/1.0\r\n\r\n';

async function setup(t: ExecutionContext) {
  const sb = await createSandbox(t, { world: true });
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  mkdirSync(join(image, 'www'));
  writeFileSync(join(image, 'www', 'hello'), 'hello-from-ctr\n');
  return { sb, renv, image, world: sb.world as string };
}

test('bridge + -p: reachable from the world, the host (127.0.0.1 and its address) and another container; rm leaves nothing', async (t) => {
  const { renv, image, world } = await setup(t);
  await ctnet(renv, ['run', '-d', '--name', 'web', '-p', '18080:80', image, 'httpd', '-f', '-p', '80', '-h', '/www']);
  const view = await inspect(renv, 'web');
  t.regex(view.NetworkSettings.IPAddress, /^10\.90\.\d+\.\d+$/);
  t.deepEqual(view.NetworkSettings.Ports, { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '18080' }] });
  t.is((await ctnet(renv, ['port', 'web'])).stdout, '80/tcp -> 0.0.0.0:18080\n');
  t.is((await ctnet(renv, ['container', 'check', 'web'])).stdout, 'web: network ctnet ok\n');
  t.regex((await ctnet(renv, ['ps'])).stdout, /0\.0\.0\.0:18080->80\/tcp/);
  const during = await snapshot(renv);
  t.true(during.links.includes('ctnet0'));
  t.is(during.leases.length, 1);
  t.true(during.rules.length > 0);

  t.regex(await connect(world, 'tcp', worldLink.hostAddr, 18080, request), /hello-from-ctr/, 'world → host address');
  t.regex(await connect(renv.host, 'tcp', '127.0.0.1', 18080, request), /hello-from-ctr/, 'host → 127.0.0.1');
  t.regex(await connect(renv.host, 'tcp', worldLink.hostAddr, 18080, request), /hello-from-ctr/, 'host → its own address');
  const peer = await ctnet(renv, [
    'run',
    '--rm',
    image,
    'sh',
    '-c',
    `printf '${request.replace(/\r\n/g, '\\r\\n')}' | nc ${worldLink.hostAddr} 18080`,
  ]);
  t.regex(peer.stdout, /hello-from-ctr/, 'another container → host address');

  // The port is taken: a clear error that names the holder, and nothing half-made.
  const clash = await ctnet(renv, ['run', '-d', '--name', 'clash', '-p', '18080:80', image, 'true'], { allowFailure: true });
  t.not(clash.code, 0);
  t.regex(clash.stderr, /0\.0\.0\.0:18080\/tcp: port is already allocated by container web/);
  t.deepEqual((await snapshot(renv)).leases.length, 1);

  await ctnet(renv, ['rm', '-f', 'web']);
  const after = await settledSnapshot(renv);
  t.deepEqual(after.links, ['ctnet0', 'lo', 'uplink0'], 'no veth left (the bridge stays, as docker0 does)');
  t.deepEqual(after.rules, [], 'no per-container rule left');
  t.deepEqual(after.leases, [], 'no lease left');
  t.deepEqual(readdirSync(join(renv.root, 'portmap', 'ports')), [], 'no port reservation left');
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('UDP publish and a random host port', async (t) => {
  const { renv, world } = await setup(t);
  // The default image shows the host's /usr, so node serves UDP inside the container.
  const server =
    "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send('udp '+m,r.port,r.address));s.bind(5353)";
  await ctnet(renv, [
    'run',
    '-d',
    '--name',
    'dns',
    '-p',
    '15353:5353/udp',
    '-P',
    '--expose',
    '5353',
    'default',
    'node',
    '-e',
    server,
  ]);
  let answer = '';
  for (let i = 0; i < 50 && !answer.startsWith('udp'); i++) {
    answer = await connect(world, 'udp', worldLink.hostAddr, 15353, 'ping');
  }
  t.is(answer, 'udp ping');
  const tcp = (await inspect(renv, 'dns')).NetworkSettings.Ports['5353/tcp']?.[0];
  t.truthy(tcp);
  t.true(Number(tcp?.HostPort) >= 1024, 'a free port from the ephemeral range');
  await ctnet(renv, ['rm', '-f', 'dns']);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('container:NAME shares the network namespace and the published ports; --rm of a bridge container releases everything', async (t) => {
  const { renv, image, world } = await setup(t);
  await ctnet(renv, ['run', '-d', '--name', 'web', '-p', '18081:80', image, 'httpd', '-f', '-p', '80', '-h', '/www']);
  const ip = (await inspect(renv, 'web')).NetworkSettings.IPAddress;
  const side = await ctnet(renv, [
    'run',
    '--rm',
    '--network',
    'container:web',
    image,
    'sh',
    '-c',
    `ip -o -4 addr show eth0; printf '${request.replace(/\r\n/g, '\\r\\n')}' | nc 127.0.0.1 80`,
  ]);
  t.regex(side.stdout, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`));
  t.regex(side.stdout, /hello-from-ctr/);
  t.is((await ctnet(renv, ['port', 'web', '80/tcp'])).stdout, '0.0.0.0:18081\n');
  t.regex(await connect(world, 'tcp', worldLink.hostAddr, 18081, request), /hello-from-ctr/);
  const bad = await ctnet(renv, ['run', '--rm', '--network', 'container:web', '-p', '1:1', image, 'true'], {
    allowFailure: true,
  });
  t.regex(bad.stderr, /conflicting options/);
  await ctnet(renv, ['stop', '-t', '1', 'web']);
  t.deepEqual((await snapshot(renv)).leases, []);
  await ctnet(renv, ['rm', 'web']);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('kill -9 of the CLI in the middle of a bridge run, then ps and rm -f: no veth, lease, rule, reservation or state left', async (t) => {
  const { renv, image } = await setup(t);
  const cli = ['--import', 'tsx', join(repoRoot, 'cli', 'main.ts')];
  let port = 18100;
  for (const delayMs of [300, 600, 900, 1200, 1500, 1800, 2400]) {
    const child = spawn(
      'nsenter',
      [`--net=/run/netns/${renv.host}`, process.execPath, ...cli, 'run', '-p', `${port++}:80`, image, 'sleep', '60'],
      {
        env: renv.env,
        cwd: repoRoot,
        stdio: 'ignore',
      },
    );
    await new Promise((r) => setTimeout(r, delayMs));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  const ps = JSON.parse((await ctnet(renv, ['ps', '-a', '--json'])).stdout) as { Id: string; State: { Status: string } }[];
  const running = ps.filter((c) => c.State.Status === 'running').length;
  t.true(ps.every((c) => c.State.Status === 'running' || c.State.Status === 'exited'));
  const mid = await snapshot(renv);
  t.is(mid.leases.length, running, 'a lease for each running container only');
  t.is(mid.links.filter((l) => l.startsWith('veth')).length, running, 'a veth for each running container only');
  if (ps.length) await ctnet(renv, ['rm', '-f', ...ps.map((c) => c.Id)]);
  await assertAllReleased(t, renv);
});

test('parallel runs: distinct addresses and ports, all reachable, all released', async (t) => {
  const { renv, image, world } = await setup(t);
  const n = 6;
  const ids = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      ctnet(renv, ['run', '-d', '--name', `p${i}`, '-p', `${18200 + i}:80`, image, 'httpd', '-f', '-p', '80', '-h', '/www']).then(
        (r) => r.stdout.trim(),
      ),
    ),
  );
  t.is(new Set(ids).size, n);
  const views = await Promise.all(ids.map((id) => inspect(renv, id)));
  t.is(new Set(views.map((v) => v.NetworkSettings.IPAddress)).size, n, 'distinct addresses');
  for (let i = 0; i < n; i++)
    t.regex(await connect(world, 'tcp', worldLink.hostAddr, 18200 + i, request), /hello-from-ctr/, `p${i}`);
  await ctnet(renv, ['rm', '-f', ...ids]);
  await assertAllReleased(t, renv);
});

test('a network of its own from a conflist in the state root', async (t) => {
  const { renv, image } = await setup(t);
  mkdirSync(join(renv.root, 'networks'), { recursive: true });
  const conf = {
    cniVersion: '1.0.0',
    name: 'lab',
    plugins: [
      {
        type: 'bridge',
        bridge: 'ctt-lab0',
        isGateway: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: '10.123.4.0/24' }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: join(renv.root, 'ipam'),
        },
      },
    ],
  };
  writeFileSync(join(renv.root, 'networks', 'lab.conflist'), JSON.stringify(conf));
  const r = await ctnet(renv, ['run', '--rm', '--network', 'lab', image, 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
  t.regex(r.stdout, /inet 10\.123\.4\.\d+\/24/);
  const after = await settledSnapshot(renv);
  t.true(after.links.includes('ctt-lab0'));
  t.deepEqual(
    after.links.filter((l) => l.startsWith('veth')),
    [],
  );
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('rm while someone else holds the namespace: its addresses and lease go at once, its veth when the holder leaves', async (t) => {
  const { renv, image } = await setup(t);
  await ctnet(renv, ['run', '-d', '--name', 'held', image, 'sleep', '300']);
  const view = await inspect(renv, 'held');
  const nsFile = join(renv.root, 'netns', view.Id);
  const holder = spawn('nsenter', [`--net=${nsFile}`, 'sleep', '300'], { stdio: 'ignore' });
  t.teardown(() => holder.kill('SIGKILL'));
  const held = `/proc/${holder.pid}/ns/net`;
  // nsenter starts in our namespace and switches before it execs sleep.
  const own = readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 100 && readlinkSync(held) === own; i++) await new Promise((r) => setTimeout(r, 20));
  t.regex((await nsRun(renv.host, 'nsenter', [`--net=${held}`, 'ip', '-o', 'addr', 'show', 'scope', 'global'])).stdout, /eth0/);

  await ctnet(renv, ['rm', '-f', 'held']);
  const globalAddrs = (await run('nsenter', [`--net=${held}`, 'ip', '-o', 'addr', 'show', 'scope', 'global'])).stdout;
  t.is(globalAddrs.trim(), '', 'no address left in a namespace that outlives its container');
  const during = await snapshot(renv);
  t.deepEqual(during.leases, [], 'the lease is free again');
  t.deepEqual(during.rules, []);
  t.is(during.links.filter((l) => l.startsWith('veth')).length, 1, 'the veth lives as long as the namespace');

  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  const after = await settledSnapshot(renv);
  t.deepEqual(
    after.links.filter((l) => l.startsWith('veth')),
    [],
    'the kernel removes the veth with the namespace',
  );
  t.deepEqual(leftovers(renv), nothingLeft);
});
