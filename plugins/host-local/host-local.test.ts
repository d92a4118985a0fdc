/**
 * The plugin through skel's handle(), in-process, as the bridge calls it (no root needed: CNI_NETNS
 * is this process's own namespace with CNI_NETNS_OVERRIDE=1).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { handle, InProcessExecutor } from '../../core/index.js';
import { hostLocalPlugin } from './host-local.js';

const executor = new InProcessExecutor({ 'host-local': async () => hostLocalPlugin });

function env(command: string, id = 'c1', extra: Record<string, string> = {}) {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: '/proc/self/ns/net',
    CNI_NETNS_OVERRIDE: '1',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/nonexistent',
    ...extra,
  };
}

function dataDir(t: ExecutionContext): string {
  const d = mkdtempSync(join(tmpdir(), 'ctnet-hl-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function call(command: string, conf: unknown, id = 'c1', extra: Record<string, string> = {}) {
  const out = await handle(
    hostLocalPlugin,
    env(command, id, extra),
    typeof conf === 'string' ? conf : JSON.stringify(conf),
    executor,
  );
  return { ...out, json: out.stdout ? JSON.parse(out.stdout) : undefined };
}

test('ADD inside a bridge netconf: reads conf.ipam, unknown top-level keys pass, network = conf.name', async (t) => {
  const d = dataDir(t);
  const conf = {
    cniVersion: '1.0.0',
    name: 'br-net',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    ipam: { type: 'host-local', dataDir: d, ranges: [[{ subnet: '10.5.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
  const r = await call('ADD', conf);
  t.is(r.exitCode, 0, r.stdout);
  t.deepEqual(r.json, {
    cniVersion: '1.0.0',
    ips: [{ address: '10.5.0.2/24', gateway: '10.5.0.1' }],
    routes: [{ dst: '0.0.0.0/0' }],
  });
  t.deepEqual(readdirSync(join(d, 'br-net')).sort(), ['10.5.0.2', 'ctnet-owners', 'last_reserved_ip.0', 'lock']);
  t.is((await call('DEL', conf)).exitCode, 0);
  t.is((await call('DEL', conf)).exitCode, 0);
});

test('config: the ipam section is checked and messages name the key', async (t) => {
  const base = { cniVersion: '1.1.0', name: 'n', type: 'host-local' };
  const cases: [unknown, RegExp][] = [
    [base, /ipam is required/],
    [{ ...base, ipam: { type: 'host-local', ranges: [[{ rangeStart: '10.0.0.1' }]] } }, /ipam\.ranges\[0\]\[0\]\.subnet/],
    [{ ...base, ipam: { type: 'host-local', ranges: 'x' } }, /ipam\.ranges/],
    [{ ...base, ipam: { type: 'host-local', subnet: '10.0.0.0/24', routes: [{ gw: '1.1.1.1' }] } }, /ipam\.routes\[0\]\.dst/],
    [{ ...base, ipam: { type: 'host-local', subnet: '10.0.0.0/24', dataDir: 5 } }, /ipam\.dataDir/],
    [
      { ...base, ipam: { type: 'host-local', ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.1.1' }]] } },
      /ipam\.ranges\[0\]\[0\]\.gateway/,
    ],
  ];
  for (const [conf, pattern] of cases) {
    const r = await call('ADD', conf);
    t.is(r.exitCode, 1);
    t.is(r.json.code, 7, JSON.stringify(r.json));
    t.regex(r.json.msg, pattern);
  }
});

test('malformed JSON is code 6, missing cniVersion code 1, nothing written', async (t) => {
  const d = dataDir(t);
  t.is((await call('ADD', '{"cniVersion":')).json.code, 6);
  t.is(
    (await call('ADD', { name: 'n', type: 'host-local', ipam: { type: 'host-local', dataDir: d, subnet: '10.0.0.0/24' } })).json
      .code,
    1,
  );
  t.deepEqual(readdirSync(d), []);
});

test('CNI_ARGS IP= and runtimeConfig.ips request addresses; resolvConf fills dns', async (t) => {
  const d = dataDir(t);
  const resolvConf = join(d, 'resolv.conf');
  writeFileSync(resolvConf, 'nameserver 10.6.0.53\nsearch example.org\n');
  const ipam = { type: 'host-local', dataDir: d, ranges: [[{ subnet: '10.6.0.0/24' }], [{ subnet: 'fd06::/64' }]], resolvConf };
  const conf = { cniVersion: '1.1.0', name: 'n', type: 'host-local', ipam };
  const r = await call('ADD', conf, 'c1', { CNI_ARGS: 'IgnoreUnknown=1;IP=10.6.0.50,fd06::50' });
  t.deepEqual(
    r.json.ips.map((i: { address: string }) => i.address),
    ['10.6.0.50/24', 'fd06::50/64'],
  );
  t.deepEqual(r.json.dns, { nameservers: ['10.6.0.53'], search: ['example.org'] });
  const r2 = await call('ADD', { ...conf, runtimeConfig: { ips: ['10.6.0.60'] } }, 'c2');
  t.is(r2.json.ips[0].address, '10.6.0.60/24');
  const r3 = await call('ADD', conf, 'c3', { CNI_ARGS: 'IP=10.7.0.1' });
  t.is(r3.json.code, 7);
});

test('STATUS is code 50 while the range is full; GC with an empty valid list frees it', async (t) => {
  const d = dataDir(t);
  const conf = {
    cniVersion: '1.1.0',
    name: 'n',
    type: 'host-local',
    ipam: { type: 'host-local', dataDir: d, subnet: '10.8.0.0/30' },
  };
  t.is((await call('STATUS', conf)).exitCode, 0);
  t.is((await call('ADD', conf, 'a')).exitCode, 0);
  const full = await call('STATUS', conf);
  t.is(full.json.code, 50);
  const gc = await call('GC', { ...conf, 'cni.dev/valid-attachments': [] });
  t.is(gc.exitCode, 0, gc.stdout);
  t.is((await call('STATUS', conf)).exitCode, 0);
});
