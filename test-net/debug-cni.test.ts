/** `ctnet debug cni` drives a conflist through the reference plugins and through ours. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { ctnet, writeConflist } from './debug-cli.js';
import { cniBinDir, createNetns, createSandbox, netnsPath, nsRun, referenceCniDir } from './sandbox.js';

function bridgeConflist(root: string, name: string, bridge: string, subnet: string, version: string, portmap = false) {
  return writeConflist(root, {
    cniVersion: version,
    name,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        ipMasq: true,
        ipam: { type: 'host-local', dataDir: join(root, 'ipam'), ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      ...(portmap ? [{ type: 'portmap', capabilities: { portMappings: true } }] : []),
    ],
  });
}

async function addresses(ns: string, dev: string): Promise<string[]> {
  const r = await nsRun(ns, 'ip', ['-j', 'addr', 'show', 'dev', dev], { allowFailure: true });
  if (r.code !== 0) return [];
  const links = JSON.parse(r.stdout) as { addr_info: { family: string; local: string; prefixlen: number }[] }[];
  return links.flatMap((l) => l.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`));
}

test('reference plugins: add chains bridge and portmap, caches the result, check and del clean up', async (t) => {
  const sb = await createSandbox(t);
  const ctr = await createNetns(t, 'c');
  bridgeConflist(sb.dir, 'refnet', 'refbr0', '10.77.0.0/24', '1.0.0', true);
  const cap = 'portMappings=[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]';
  const common = ['--cni-path', referenceCniDir, '--containerid', 'ref1'];

  const add = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'add', 'refnet', netnsPath(ctr), '--cap', cap, ...common]);
  t.is(add.code, 0, add.stderr);
  const result = add.json as { cniVersion: string; ips: { address: string }[]; interfaces: { name: string }[] };
  t.is(result.cniVersion, '1.0.0');
  t.deepEqual(
    result.ips.map((i) => i.address),
    ['10.77.0.2/24'],
  );
  t.deepEqual(await addresses(ctr, 'eth0'), ['10.77.0.2/24']);
  t.true(existsSync(join(sb.dir, 'cni-results', 'refnet-ref1-eth0')));
  // portmap got the capability argument: its DNAT rule is there.
  const nat = await nsRun(sb.host, 'iptables-save', ['-t', 'nat']);
  t.regex(nat.stdout, /--dport 18080 -j DNAT --to-destination 10\.77\.0\.2:80/);

  // DEL without --cap still removes portmap's rules: the cached capability arguments are reused.
  const del = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'del', 'refnet', netnsPath(ctr), ...common]);
  t.is(del.code, 0, del.stderr);
  t.deepEqual(await addresses(ctr, 'eth0'), []);
  t.false(existsSync(join(sb.dir, 'cni-results', 'refnet-ref1-eth0')));
  t.notRegex((await nsRun(sb.host, 'iptables-save', ['-t', 'nat'])).stdout, /18080/);
  t.deepEqual(
    readdirSync(join(sb.dir, 'ipam', 'refnet')).filter((f) => /^\d/.test(f)),
    [],
    'the lease is released',
  );
});

test('reference plugins: check passes after add and fails once the container interface is gone', async (t) => {
  const sb = await createSandbox(t);
  const ctr = await createNetns(t, 'c');
  bridgeConflist(sb.dir, 'chk', 'chkbr0', '10.78.0.0/24', '1.0.0');
  const common = ['--cni-path', referenceCniDir];
  t.is((await ctnet(sb.host, sb.dir, ['debug', 'cni', 'add', 'chk', netnsPath(ctr), ...common])).code, 0);
  const ok = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'check', 'chk', netnsPath(ctr), ...common]);
  t.is(ok.code, 0, ok.stderr);
  await nsRun(ctr, 'ip', ['link', 'del', 'eth0']);
  const broken = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'check', 'chk', netnsPath(ctr), ...common]);
  t.not(broken.code, 0);
  t.regex(broken.stderr, /^ctnet: failed to run bridge CHECK on network "chk"/m);
  t.is((await ctnet(sb.host, sb.dir, ['debug', 'cni', 'del', 'chk', netnsPath(ctr), ...common])).code, 0);
});

test('a network found in an /etc/cni/net.d-style .conf file (single plugin) via --netconf-dir', async (t) => {
  const sb = await createSandbox(t);
  const ctr = await createNetns(t, 'c');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const dir = join(sb.dir, 'net.d');
  mkdirSync(dir);
  writeFileSync(
    join(dir, '10-single.conf'),
    JSON.stringify({
      cniVersion: '0.4.0',
      name: 'single',
      type: 'bridge',
      bridge: 'singlebr0',
      ipam: { type: 'host-local', dataDir: join(sb.dir, 'ipam'), subnet: '10.79.0.0/24' },
    }),
  );
  const args = ['--netconf-dir', dir, '--cni-path', referenceCniDir];
  const add = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'add', 'single', netnsPath(ctr), ...args]);
  t.is(add.code, 0, add.stderr);
  t.is((add.json as { cniVersion: string }).cniVersion, '0.4.0');
  t.deepEqual(await addresses(ctr, 'eth0'), ['10.79.0.2/24']);
  t.is((await ctnet(sb.host, sb.dir, ['debug', 'cni', 'del', 'single', netnsPath(ctr), ...args])).code, 0);
});

test('errors: unknown network, missing plugin, bad --cap are one line and a non-zero exit', async (t) => {
  const sb = await createSandbox(t);
  const ctr = await createNetns(t, 'c');
  const missing = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'add', 'nosuch', netnsPath(ctr)]);
  t.not(missing.code, 0);
  t.regex(missing.stderr, /^ctnet: failed to find network "nosuch"/);
  writeConflist(sb.dir, { cniVersion: '1.0.0', name: 'ghost', plugins: [{ type: 'no-such-plugin' }] });
  const noPlugin = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'add', 'ghost', netnsPath(ctr), '--cni-path', referenceCniDir]);
  t.not(noPlugin.code, 0);
  t.regex(noPlugin.stderr, /failed to find plugin "no-such-plugin"/);
  const badCap = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'add', 'ghost', netnsPath(ctr), '--cap', 'portMappings=[oops']);
  t.not(badCap.code, 0);
  t.regex(badCap.stderr, /invalid --cap portMappings/);
});

test('ctnet plugins (built binaries): add, check, status, gc frees a stale attachment, del', async (t) => {
  if (!existsSync(join(cniBinDir, 'bridge'))) return t.fail('run `npm run build` first');
  const sb = await createSandbox(t);
  const ctrA = await createNetns(t, 'a');
  const ctrB = await createNetns(t, 'b');
  bridgeConflist(sb.dir, 'ours', 'oursbr0', '10.80.0.0/24', '1.1.0');
  const common = ['--cni-path', cniBinDir, '--exec'];
  const addA = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'add', 'ours', netnsPath(ctrA), '--containerid', 'a', ...common]);
  t.is(addA.code, 0, addA.stderr);
  const addB = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'add', 'ours', netnsPath(ctrB), '--containerid', 'b', ...common]);
  t.is(addB.code, 0, addB.stderr);
  t.deepEqual(await addresses(ctrA, 'eth0'), ['10.80.0.2/24']);
  t.deepEqual(await addresses(ctrB, 'eth0'), ['10.80.0.3/24']);
  const check = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'check', 'ours', netnsPath(ctrA), '--containerid', 'a', ...common]);
  t.is(check.code, 0, check.stderr);
  const status = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'status', 'ours', ...common]);
  t.is(status.code, 0, status.stderr);
  t.is(status.stdout.trim(), 'network ours: ready');

  // Only "a" is valid: GC sends DEL for the cached attachment "b", then GC to each plugin.
  const gc = await ctnet(sb.host, sb.dir, ['debug', 'cni', 'gc', 'ours', '--valid', 'a', ...common]);
  t.is(gc.code, 0, gc.stderr);
  t.is(gc.stdout.trim(), 'deleted stale attachment b/eth0');
  t.deepEqual(await addresses(ctrB, 'eth0'), []);
  t.deepEqual(await addresses(ctrA, 'eth0'), ['10.80.0.2/24']);
  const leases = readdirSync(join(sb.dir, 'ipam', 'ours')).filter((f) => /^\d/.test(f));
  t.deepEqual(leases, ['10.80.0.2']);

  t.is((await ctnet(sb.host, sb.dir, ['debug', 'cni', 'del', 'ours', netnsPath(ctrA), '--containerid', 'a', ...common])).code, 0);
  t.deepEqual(await addresses(ctrA, 'eth0'), []);
});
