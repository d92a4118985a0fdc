/**
 * `network connect`/`disconnect` with the runner's containers: a second interface, names of the
 * containers on shared user-defined networks in /etc/hosts, isolation between networks.
 */
import test from 'ava';
import { busyboxRootfs, ctnet, ensureInitHelper, runnerEnv } from './runner-helpers.js';
import { createSandbox } from './sandbox.js';

test.before(ensureInitHelper);

test('connect adds eth1 and names; networks stay isolated; disconnect removes both; rm refuses while attached', async (t) => {
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  const cli = (args: string[]) => ctnet(renv, args, { allowFailure: true });
  t.is((await cli(['network', 'create', 'front', '--subnet', '10.81.0.0/24'])).code, 0);
  t.is((await cli(['network', 'create', 'back', '--subnet', '10.82.0.0/24'])).code, 0);
  for (const [name, net] of [
    ['a', 'front'],
    ['b', 'front'],
    ['c', 'back'],
  ]) {
    const r = await cli(['run', '-d', '--name', name as string, '--network', net as string, image, 'sleep', '300']);
    t.is(r.code, 0, r.stderr);
  }
  t.teardown(async () => {
    await cli(['rm', '-f', 'a', 'b', 'c']);
  });
  const ping = async (from: string, to: string) => (await cli(['exec', from, 'ping', '-c', '1', '-W', '1', to])).code === 0;

  // Different networks are isolated: c cannot reach b.
  t.false(await ping('c', '10.81.0.3'), 'back cannot reach front');
  t.true(await ping('a', '10.81.0.3'), 'a reaches b on front');

  const connected = await cli(['network', 'connect', 'back', 'a']);
  t.is(connected.code, 0, connected.stderr);
  const addr = await cli(['exec', 'a', 'ip', '-o', '-4', 'addr', 'show', 'eth1']);
  t.regex(addr.stdout, /inet 10\.82\.0\.3\/24/);
  const routes = await cli(['exec', 'a', 'ip', 'route']);
  t.regex(routes.stdout, /^default via 10\.81\.0\.1 dev eth0/m, 'the first network keeps the default route');
  t.true(await ping('a', '10.82.0.2'), 'a reaches c over eth1');

  // Names: a knows b (front) and c (back); c knows a; b does not know c.
  const hostsA = (await cli(['exec', 'a', 'cat', '/etc/hosts'])).stdout;
  t.regex(hostsA, /^10\.81\.0\.3\tb /m);
  t.regex(hostsA, /^10\.82\.0\.2\tc /m);
  t.true(await ping('a', 'b'), 'a resolves b by name');
  t.true(await ping('c', 'a'), 'c resolves a by name');
  t.notRegex((await cli(['exec', 'b', 'cat', '/etc/hosts'])).stdout, /\tc /);

  const inspect = await cli(['network', 'inspect', 'back', '--json']);
  const back = (JSON.parse(inspect.stdout) as { containers: { name?: string; ifname: string }[] }[])[0];
  t.deepEqual(back?.containers.map((c) => [c.name, c.ifname]).sort(), [
    ['a', 'eth1'],
    ['c', 'eth0'],
  ]);
  const rm = await cli(['network', 'rm', 'back']);
  t.not(rm.code, 0);
  t.regex(rm.stderr, /failed to remove network "back": 2 containers are attached: c \(10\.82\.0\.2\), a \(10\.82\.0\.3\)/);

  const twice = await cli(['network', 'connect', 'back', 'a']);
  t.regex(twice.stderr, /already connected/);
  const primary = await cli(['network', 'disconnect', 'front', 'a']);
  t.regex(primary.stderr, /that is the network it was started on/);

  const disconnected = await cli(['network', 'disconnect', 'back', 'a']);
  t.is(disconnected.code, 0, disconnected.stderr);
  t.not((await cli(['exec', 'a', 'ip', 'link', 'show', 'eth1'])).code, 0, 'eth1 is gone');
  t.notRegex((await cli(['exec', 'c', 'cat', '/etc/hosts'])).stdout, /\ta /, 'c forgot a');
  t.false(await ping('a', '10.82.0.2'));
});
