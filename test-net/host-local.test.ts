/**
 * host-local end to end: the built bin/cni/host-local run as an orchestrator runs it, inside a
 * sandbox host namespace, side by side with the reference /usr/lib/cni/host-local on one lease dir.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import {
  cniBinDir,
  createNetns,
  createSandbox,
  netnsPath,
  type PluginCall,
  type PluginOutcome,
  referenceCniDir,
  runPlugin,
} from './sandbox.js';

const ours = join(cniBinDir, 'host-local');
const reference = join(referenceCniDir, 'host-local');
/** The newest version the Debian reference plugin speaks. */
const referenceVersion = '1.0.0';

interface Env {
  host: string;
  netns: string;
  dataDir: string;
  conf(ipam?: Record<string, unknown>, extra?: Record<string, unknown>): Record<string, unknown>;
  run(binary: string, call: PluginCall, conf: unknown): Promise<PluginOutcome>;
  add(id: string, conf: unknown, binary?: string, extra?: Partial<PluginCall>): Promise<PluginOutcome>;
  del(id: string, conf: unknown, binary?: string): Promise<PluginOutcome>;
  leases(network?: string): string[];
}

async function setup(t: ExecutionContext, network = 'hlnet'): Promise<Env> {
  const sb = await createSandbox(t);
  const container = await createNetns(t, 'c');
  const dataDir = sb.dir;
  const env: Env = {
    host: sb.host,
    netns: netnsPath(container),
    dataDir,
    conf: (ipam = {}, extra = {}) => ({
      cniVersion: '1.1.0',
      name: network,
      type: 'host-local',
      ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.99.0.0/24' }]], ...ipam },
      ...extra,
    }),
    run: (binary, call, conf) => runPlugin(sb.host, binary, call, conf),
    add: (id, conf, binary = ours, extra = {}) =>
      env.run(binary, { command: 'ADD', containerId: id, netns: env.netns, ifname: 'eth0', ...extra }, conf),
    del: (id, conf, binary = ours) =>
      env.run(binary, { command: 'DEL', containerId: id, netns: env.netns, ifname: 'eth0' }, conf),
    leases: (net = network) => {
      const dir = join(dataDir, net);
      return existsSync(dir)
        ? readdirSync(dir)
            .filter((n) => /^[0-9a-f.:]+$/.test(n) && /[.:]/.test(n))
            .sort()
        : [];
    },
  };
  return env;
}

function addresses(r: PluginOutcome): string[] {
  return ((r.json?.ips as { address: string }[] | undefined) ?? []).map((i) => i.address);
}

function ok(t: ExecutionContext, r: PluginOutcome, what: string): void {
  t.is(r.exitCode, 0, `${what}: ${r.stdout} ${r.stderr}`);
}

test('every spec version: output identical to the reference plugin (1.1.0: same shape)', async (t) => {
  const e = await setup(t);
  const resolv = join(e.dataDir, 'resolv.conf');
  writeFileSync(resolv, 'nameserver 10.99.0.53\nsearch example.org\noptions ndots:2\n');
  const ipam = {
    resolvConf: resolv,
    ranges: [[{ subnet: '10.99.0.0/24' }], [{ subnet: 'fd99::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
  };
  for (const version of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    const mine = await e.add('c1', e.conf(ipam, { cniVersion: version, name: `ours-${version}` }));
    ok(t, mine, `ADD ${version}`);
    const v1 = version.startsWith('1.');
    t.deepEqual(mine.json, {
      cniVersion: version,
      ips: [
        { ...(!v1 && { version: '4' }), address: '10.99.0.2/24', gateway: '10.99.0.1' },
        { ...(!v1 && { version: '6' }), address: 'fd99::2/64', gateway: 'fd99::1' },
      ],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      dns: { nameservers: ['10.99.0.53'], search: ['example.org'], options: ['ndots:2'] },
    });
    if (version === '1.1.0') continue;
    const ref = await e.add('c1', e.conf(ipam, { cniVersion: version, name: `ref-${version}` }), reference);
    ok(t, ref, `reference ADD ${version}`);
    t.deepEqual(mine.json, ref.json, version);
  }
});

test('lease files are in the reference format', async (t) => {
  const e = await setup(t);
  ok(t, await e.add('cid-one', e.conf({ ranges: [[{ subnet: '10.99.0.0/24' }], [{ subnet: 'fd99::/64' }]] })), 'ADD');
  const dir = join(e.dataDir, 'hlnet');
  t.deepEqual(e.leases(), ['10.99.0.2', 'fd99::2']);
  t.is(readFileSync(join(dir, '10.99.0.2'), 'utf8'), 'cid-one\r\neth0');
  t.is(statSync(join(dir, 'fd99::2')).mode & 0o777, 0o600);
  t.is(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8'), '10.99.0.2');
  t.is(readFileSync(join(dir, 'last_reserved_ip.1'), 'utf8'), 'fd99::2');
  t.true(statSync(join(dir, 'lock')).isFile());
});

test('interop: leases made by the reference are seen and released by ours', async (t) => {
  const e = await setup(t);
  const conf = e.conf({}, { cniVersion: referenceVersion });
  const ref = await e.add('refc', conf, reference);
  ok(t, ref, 'reference ADD');
  t.deepEqual(addresses(ref), ['10.99.0.2/24']);
  // Ours continues round-robin after the reference's cursor and refuses a second lease for refc.
  const mine = await e.add('ourc', conf);
  t.deepEqual(addresses(mine), ['10.99.0.3/24']);
  const dup = await e.add('refc', conf);
  t.is(dup.exitCode, 1);
  t.regex(String(dup.json?.msg), /10\.99\.0\.2 has been allocated to refc, duplicate allocation is not allowed/);
  ok(t, await e.run(ours, { command: 'CHECK', containerId: 'refc', netns: e.netns, ifname: 'eth0' }, conf), 'CHECK');
  ok(t, await e.del('refc', conf), 'DEL of the reference lease');
  t.deepEqual(e.leases(), ['10.99.0.3']);
  // Another reference ADD after ours must skip ours.
  const ref2 = await e.add('refd', conf, reference);
  t.deepEqual(addresses(ref2), ['10.99.0.4/24']);
});

test('interop: leases made by ours are skipped, refused as duplicate and released by the reference', async (t) => {
  const e = await setup(t);
  const conf = e.conf({}, { cniVersion: referenceVersion });
  t.deepEqual(addresses(await e.add('ourc', conf)), ['10.99.0.2/24']);
  const ref = await e.add('refc', conf, reference);
  t.deepEqual(addresses(ref), ['10.99.0.3/24']);
  const dup = await e.add('ourc', conf, reference);
  t.is(dup.exitCode, 1);
  t.regex(dup.stdout, /duplicate allocation is not allowed/);
  ok(t, await e.run(reference, { command: 'CHECK', containerId: 'ourc', netns: e.netns, ifname: 'eth0' }, conf), 'ref CHECK');
  ok(t, await e.del('ourc', conf, reference), 'reference DEL of our lease');
  t.deepEqual(e.leases(), ['10.99.0.3']);
  // Our index is stale now (the reference deleted .2 and wrote no index): ours must still be right.
  t.deepEqual(addresses(await e.add('ourd', conf)), ['10.99.0.4/24']);
  ok(t, await e.del('refc', conf), 'our DEL of the reference lease');
  t.deepEqual(e.leases(), ['10.99.0.4']);
});

test('30 concurrent ADDs (separate processes) get 30 distinct addresses', async (t) => {
  const e = await setup(t);
  const conf = e.conf();
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => e.add(`par${i}`, conf)));
  for (const [i, r] of results.entries()) ok(t, r, `ADD ${i}`);
  const all = results.flatMap(addresses);
  t.is(new Set(all).size, 30);
  t.is(e.leases().length, 30);
  for (const [i, r] of results.entries()) {
    const ip = addresses(r)[0]?.split('/')[0] as string;
    t.is(readFileSync(join(e.dataDir, 'hlnet', ip), 'utf8'), `par${i}\r\neth0`);
  }
});

test('exhausted range: code 102, and the earlier set is released (no leftover lease)', async (t) => {
  const e = await setup(t);
  const conf = e.conf({ ranges: [[{ subnet: '10.99.0.0/24' }], [{ subnet: '10.98.0.0/30' }]] });
  t.deepEqual(addresses(await e.add('a', conf)), ['10.99.0.2/24', '10.98.0.2/30']);
  const r = await e.add('b', conf);
  t.is(r.exitCode, 1);
  t.is(r.json?.code, 102);
  t.regex(String(r.json?.msg), /no IP addresses available in range set 10\.98\.0\.1-10\.98\.0\.2/);
  t.deepEqual(e.leases(), ['10.98.0.2', '10.99.0.2']);
});

test('DEL twice succeeds; DEL of an unknown container succeeds', async (t) => {
  const e = await setup(t);
  const conf = e.conf();
  ok(t, await e.add('a', conf), 'ADD');
  ok(t, await e.del('a', conf), 'DEL');
  ok(t, await e.del('a', conf), 'second DEL');
  ok(t, await e.run(ours, { command: 'DEL', containerId: 'never', ifname: 'eth0' }, conf), 'DEL without netns');
  t.deepEqual(e.leases(), []);
  const check = await e.run(ours, { command: 'CHECK', containerId: 'a', netns: e.netns, ifname: 'eth0' }, conf);
  t.is(check.exitCode, 1);
});

test('GC frees leases of attachments not listed and keeps listed ones', async (t) => {
  const e = await setup(t);
  const conf = e.conf();
  for (const id of ['keep', 'drop1', 'drop2']) ok(t, await e.add(id, conf), `ADD ${id}`);
  // A lease of another network in the same dataDir must survive.
  const other = e.conf({}, { name: 'othernet' });
  ok(t, await e.add('drop1', other), 'ADD other network');
  const gc = await e.run(
    ours,
    { command: 'GC' },
    { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] },
  );
  ok(t, gc, 'GC');
  t.deepEqual(e.leases(), ['10.99.0.2']);
  t.deepEqual(e.leases('othernet'), ['10.99.0.2']);
  // libcni also sends the older key; an empty list frees everything.
  ok(t, await e.run(ours, { command: 'GC' }, { ...conf, 'cni.dev/attachments': [] }), 'GC all');
  t.deepEqual(e.leases(), []);
});

test('STATUS: code 50 when a range set is full, success otherwise', async (t) => {
  const e = await setup(t);
  const conf = e.conf({ ranges: [[{ subnet: '10.99.0.0/29' }]] });
  ok(t, await e.run(ours, { command: 'STATUS' }, conf), 'STATUS empty');
  for (let i = 0; i < 5; i++) ok(t, await e.add(`s${i}`, conf), `ADD ${i}`);
  const full = await e.run(ours, { command: 'STATUS' }, conf);
  t.is(full.exitCode, 1);
  t.is(full.json?.code, 50);
  ok(t, await e.del('s3', conf), 'DEL');
  ok(t, await e.run(ours, { command: 'STATUS' }, conf), 'STATUS after DEL');
});

test('requested addresses through CNI_ARGS IP= and runtimeConfig.ips', async (t) => {
  const e = await setup(t);
  const conf = e.conf({ ranges: [[{ subnet: '10.99.0.0/24' }], [{ subnet: 'fd99::/64' }]] });
  const a = await e.add('a', conf, ours, { args: 'IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.99.0.40,fd99::40' });
  t.deepEqual(addresses(a), ['10.99.0.40/24', 'fd99::40/64']);
  const b = await e.add('b', { ...conf, runtimeConfig: { ips: ['10.99.0.41/24'] } });
  t.deepEqual(addresses(b), ['10.99.0.41/24', 'fd99::41/64']);
  const taken = await e.add('c', conf, ours, { args: 'IP=10.99.0.40' });
  t.is(taken.exitCode, 1);
  t.regex(String(taken.json?.msg), /10\.99\.0\.40: it is already allocated to a eth0/);
  for (const ip of ['10.99.0.1', '10.50.0.1']) {
    const bad = await e.add('d', conf, ours, { args: `IP=${ip}` });
    t.is(bad.json?.code, 7, ip);
  }
  t.deepEqual(e.leases(), ['10.99.0.40', '10.99.0.41', 'fd99::40', 'fd99::41']);
});

test('bad inputs: right code, nothing written', async (t) => {
  const e = await setup(t);
  const cases: [string, unknown, number, RegExp][] = [
    ['invalid CIDR', e.conf({ ranges: [[{ subnet: '10.99.0.0/33' }]] }), 7, /ipam\.ranges\[0\]\[0\]\.subnet/],
    [
      'gateway outside subnet',
      e.conf({ ranges: [[{ subnet: '10.99.0.0/24', gateway: '10.1.0.1' }]] }),
      7,
      /gateway 10\.1\.0\.1 is outside/,
    ],
    [
      'rangeStart after rangeEnd',
      e.conf({ ranges: [[{ subnet: '10.99.0.0/24', rangeStart: '10.99.0.9', rangeEnd: '10.99.0.5' }]] }),
      7,
      /rangeStart 10\.99\.0\.9 is after/,
    ],
    ['/32', e.conf({ ranges: [[{ subnet: '10.99.0.0/32' }]] }), 7, /too small/],
    ['malformed JSON', '{"cniVersion":"1.1.0",', 6, /parse network config/],
    ['missing cniVersion', { ...e.conf(), cniVersion: undefined }, 1, /cniVersion/],
  ];
  for (const [what, conf, code, pattern] of cases) {
    const r = await e.add('bad', conf);
    t.is(r.exitCode, 1, what);
    t.is(r.json?.code, code, `${what}: ${r.stdout}`);
    t.regex(String(r.json?.msg), pattern, what);
  }
  t.deepEqual(readdirSync(e.dataDir), []);
});

test('concurrent ADDs of ours and the reference on one lease dir exclude each other (same flock)', async (t) => {
  const e = await setup(t);
  const conf = e.conf({}, { cniVersion: referenceVersion });
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => e.add(`mix${i}`, conf, i % 2 === 0 ? ours : reference)));
  for (const [i, r] of results.entries()) ok(t, r, `ADD ${i}`);
  const all = results.flatMap(addresses);
  t.is(new Set(all).size, 20);
  t.is(e.leases().length, 20);
});
