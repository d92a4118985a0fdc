import test from 'ava';
import { CtnetError } from '../errors.js';
import type { CniResult } from './types.js';
import { formatResult, parseResult, requireSupportedVersion, supportedVersions } from './version.js';

const full: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:01:00:01' },
    { name: 'veth12345678', mac: '0a:58:0a:01:00:02' },
    { name: 'eth0', mac: '0a:58:0a:01:00:05', mtu: 1400, sandbox: '/run/netns/x' },
  ],
  ips: [
    { address: '10.1.0.5/16', gateway: '10.1.0.1', interface: 2 },
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', priority: 10 }],
  dns: { nameservers: ['10.1.0.1'] },
};

test('every supported version round-trips a result without losing addresses or routes', (t) => {
  for (const v of supportedVersions) {
    const printed = formatResult(full, v);
    t.is(printed.cniVersion, v);
    const back = parseResult(JSON.parse(JSON.stringify(printed)), v);
    t.deepEqual(
      back.ips?.map((i) => i.address),
      ['10.1.0.5/16', 'fd00::5/64'],
      v,
    );
    t.deepEqual(back.routes?.[0]?.gw, '10.1.0.1', v);
    t.is(back.interfaces?.length, 3, v);
  }
});

test('0.3.x and 0.4.0 results carry a version per ip and drop 1.1.0-only interface fields', (t) => {
  const printed = formatResult(full, '0.4.0') as { ips: { version: string }[]; interfaces: object[]; dns: object };
  t.deepEqual(
    printed.ips.map((i) => i.version),
    ['4', '6'],
  );
  t.false('mtu' in (printed.interfaces[2] as object));
  t.deepEqual(printed.dns, { nameservers: ['10.1.0.1'] });
});

test('1.x results have no per-ip version and omit empty dns', (t) => {
  const printed = formatResult({ ...full, dns: {} }, '1.0.0') as { ips: object[] };
  t.false('version' in (printed.ips[0] as object));
  t.false('dns' in printed);
});

test('0.3.0 results named the ip list "ip"; they still parse', (t) => {
  const r = parseResult({ cniVersion: '0.3.0', ip: [{ version: '4', address: '10.0.0.2/24' }] }, '0.3.0');
  t.is(r.ips?.[0]?.address, '10.0.0.2/24');
});

test('a 0.2.0-shaped result converts to ips and routes', (t) => {
  const r = parseResult(
    {
      cniVersion: '0.2.0',
      ip4: { ip: '10.0.0.2/24', gateway: '10.0.0.1', routes: [{ dst: '0.0.0.0/0' }] },
      ip6: { ip: 'fd00::2/64' },
    },
    '0.2.0',
  );
  t.deepEqual(r.ips, [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }, { address: 'fd00::2/64' }]);
  t.deepEqual(r.routes, [{ dst: '0.0.0.0/0' }]);
});

test('missing and unsupported cniVersion are code 1 naming the versions', (t) => {
  for (const v of [undefined, '', '0.2.0', '2.0.0', 1]) {
    const e = t.throws(() => requireSupportedVersion(v), { instanceOf: CtnetError });
    t.is(e?.code, 1);
  }
  t.is(requireSupportedVersion('0.3.1'), '0.3.1');
});

test('garbage results are decode errors (code 6)', (t) => {
  for (const bad of [null, 'x', { ips: 'nope' }, { ips: [{}] }, { routes: [{ gw: '1.2.3.4' }] }]) {
    const e = t.throws(() => parseResult(bad, '1.0.0'), { instanceOf: CtnetError });
    t.is(e?.code, 6);
  }
});
