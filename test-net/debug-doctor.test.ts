/** `ctnet debug doctor` finds planted leftovers, and --fix removes exactly them and nothing else. */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { ctnet } from './debug-cli.js';
import { createNetns, createSandbox, deleteNetns, netnsPath, nsRun, referenceCniDir, repoRoot } from './sandbox.js';

interface DoctorJson {
  findings: { check: string; severity: string; detail: string; fix?: { type: string } }[];
  fixed: { detail: string; error?: string }[];
}

const saveLines = async (ns: string) =>
  (await nsRun(ns, 'iptables-save', [])).stdout.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));
const hostLinks = async (ns: string) =>
  JSON.parse((await nsRun(ns, 'ip', ['-j', 'link', 'show'])).stdout) as { ifname: string; master?: string }[];
const leases = (root: string) =>
  readdirSync(join(root, 'ipam', 'doc'))
    .filter((f) => /^\d/.test(f))
    .sort();

test('doctor finds a dead attachment, an orphan lease, an orphan veth and stale rules; --fix removes exactly those', async (t) => {
  const sb = await createSandbox(t);
  t.is(
    (await ctnet(sb.host, sb.dir, ['network', 'create', 'doc', '--subnet', '10.74.0.0/24', '-o', 'cniVersion=1.0.0'])).code,
    0,
  );
  const a = await createNetns(t, 'a');
  const b = await createNetns(t, 'b');
  const cni = (cmd: string, ns: string, id: string, ...extra: string[]) =>
    ctnet(sb.host, sb.dir, [
      'debug',
      'cni',
      cmd,
      'doc',
      netnsPath(ns),
      '--containerid',
      id,
      '--cni-path',
      referenceCniDir,
      ...extra,
    ]);
  t.is((await cni('add', a, 'a', '--cap', 'portMappings=[{"hostPort":18082,"containerPort":80,"protocol":"tcp"}]')).code, 0);
  t.is((await cni('add', b, 'b', '--cap', 'portMappings=[{"hostPort":18083,"containerPort":80,"protocol":"tcp"}]')).code, 0);
  t.teardown(async () => {
    await cni('del', a, 'a');
  });

  // Clean state first: nothing to fix.
  const clean = await ctnet(sb.host, sb.dir, ['debug', 'doctor', '--json']);
  t.deepEqual(
    (clean.json as DoctorJson).findings.filter((f) => f.fix),
    [],
    clean.stdout,
  );

  // Plant: b crashes (its netns vanishes, DEL never runs); a lease, a veth and firewall rules of nobody.
  await deleteNetns(b);
  writeFileSync(join(sb.dir, 'ipam', 'doc', '10.74.0.50'), 'ghost\r\neth0');
  const bridge = (await hostLinks(sb.host)).find((l) => l.ifname.startsWith('ctbr-'))?.ifname as string;
  await nsRun(sb.host, 'ip', ['link', 'add', 'vethdeadbeef', 'type', 'veth', 'peer', 'name', 'vethpeer0']);
  await nsRun(sb.host, 'ip', ['link', 'set', 'vethdeadbeef', 'master', bridge]);
  const plant = `import('${join(repoRoot, 'iptables', 'index.ts')}').then(async (m) => { const fw = await m.openFirewall('iptables');
    await fw.setupMasquerade({ network: 'doc', containerId: 'ghost2', ifname: 'eth0', addresses: ['10.74.0.60/24'] }); })`;
  const planted = await nsRun(sb.host, process.execPath, ['--import', 'tsx', '-e', plant], { allowFailure: true });
  t.is(planted.code, 0, planted.stderr);

  const before = await saveLines(sb.host);
  t.true(
    before.some((l) => l.includes('id=ghost2')),
    'the planted rules are there',
  );
  const leasesBefore = leases(sb.dir);
  t.deepEqual(leasesBefore, ['10.74.0.2', '10.74.0.3', '10.74.0.50']);

  const found = await ctnet(sb.host, sb.dir, ['debug', 'doctor', '--json']);
  t.is(found.code, 1);
  const fixable = (found.json as DoctorJson).findings.filter((f) => f.fix);
  t.deepEqual(fixable.map((f) => f.check).sort(), ['dead attachment', 'orphan lease', 'orphan veth', 'stale rules']);
  t.regex(fixable.find((f) => f.check === 'dead attachment')?.detail ?? '', /^b\/eth0 on network "doc"/);
  t.regex(fixable.find((f) => f.check === 'orphan lease')?.detail ?? '', /^10\.74\.0\.50 .* ghost\/eth0/);
  t.regex(fixable.find((f) => f.check === 'orphan veth')?.detail ?? '', /^vethdeadbeef on bridge/);
  t.regex(fixable.find((f) => f.check === 'stale rules')?.detail ?? '', /ghost2\/eth0/);
  const human = await ctnet(sb.host, sb.dir, ['debug', 'doctor']);
  t.regex(human.stdout, /^CHECK\s+STATUS\s+DETAIL/);
  t.regex(human.stderr, /^ctnet: doctor: 4 problems found$/m);

  const fix = await ctnet(sb.host, sb.dir, ['debug', 'doctor', '--fix', '--json']);
  t.is(fix.code, 0, fix.stderr);
  t.deepEqual(
    (fix.json as DoctorJson).fixed.filter((f) => f.error),
    [],
  );
  t.is((fix.json as DoctorJson).fixed.length, 4);

  // Exactly the leftovers are gone: b's and ghost's leases, the veth, ghost2's rules and b's port forward.
  t.deepEqual(leases(sb.dir), ['10.74.0.2']);
  const links = await hostLinks(sb.host);
  t.false(links.some((l) => l.ifname === 'vethdeadbeef'));
  t.is(links.filter((l) => l.master === bridge).length, 1, "a's veth stays on the bridge");
  t.false(existsSync(join(sb.dir, 'cni-results', 'doc-b-eth0')));
  t.true(existsSync(join(sb.dir, 'cni-results', 'doc-a-eth0')));
  const after = await saveLines(sb.host);
  t.deepEqual(
    after.filter((l) => !before.includes(l)),
    [],
    'nothing was added',
  );
  const removed = before.filter((l) => !after.includes(l));
  t.true(removed.length > 0);
  for (const l of removed) t.regex(l, /ghost2|CTNET-M-|10\.74\.0\.3|"b"|18083|CNI-DN-/, `only leftovers removed: ${l}`);
  t.true(
    after.some((l) => l.includes('10.74.0.2:80')),
    "a's port forward stays",
  );

  const again = await ctnet(sb.host, sb.dir, ['debug', 'doctor', '--json']);
  t.deepEqual(
    (again.json as DoctorJson).findings.filter((f) => f.fix),
    [],
  );
});
