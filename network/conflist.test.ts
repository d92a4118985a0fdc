import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { CtnetError } from '../core/index.js';
import { buildPluginConfig } from './cni-runtime.js';
import { listNetworks, loadNetwork, negotiatedVersion, parseNetworkConfig } from './conflist.js';

test('a single-plugin .conf becomes a one-plugin list; booleans may be strings', (t) => {
  const single = parseNetworkConfig('{"cniVersion":"0.4.0","name":"n","type":"bridge"}', 'x.conf');
  t.deepEqual(
    single.plugins.map((p) => p.type),
    ['bridge'],
  );
  const list = parseNetworkConfig('{"cniVersion":"1.0.0","name":"l","disableCheck":"true","plugins":[{"type":"a"}]}', 'x');
  t.true(list.disableCheck);
  t.is(t.throws<CtnetError>(() => parseNetworkConfig('{"name":"n","plugins":[{}]}', 'f'))?.code, 7);
  t.is(t.throws<CtnetError>(() => parseNetworkConfig('nope', 'f'))?.code, 6);
});

test('the negotiated version is the highest supported of cniVersion and cniVersions', (t) => {
  const list = parseNetworkConfig(
    '{"cniVersion":"0.4.0","cniVersions":["1.0.0","9.9.9"],"name":"n","plugins":[{"type":"a"}]}',
    'f',
  );
  t.is(negotiatedVersion(list), '1.0.0');
  t.is(
    t.throws<CtnetError>(() => negotiatedVersion(parseNetworkConfig('{"cniVersion":"7.0.0","name":"n","type":"a"}', 'f')))?.code,
    1,
  );
});

test('networks are found by name across directories, first directory winning', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'ctnet-conf-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const [a, b] = [join(root, 'a'), join(root, 'b')];
  mkdirSync(a);
  mkdirSync(b);
  writeFileSync(join(a, 'x.conflist'), '{"cniVersion":"1.0.0","name":"same","plugins":[{"type":"first"}]}');
  writeFileSync(join(b, '10-y.conf'), '{"cniVersion":"1.0.0","name":"same","type":"second"}');
  writeFileSync(join(b, '20-z.json'), '{"cniVersion":"1.0.0","name":"other","type":"third"}');
  writeFileSync(join(b, 'broken.conflist'), '{');
  writeFileSync(join(b, 'ignored.txt'), '{}');
  t.is(loadNetwork('same', [a, b]).list.plugins[0]?.type, 'first');
  t.is(loadNetwork('other', [a, b]).list.plugins[0]?.type, 'third');
  const all = listNetworks([a, b]);
  t.deepEqual(
    all.networks.map((n) => n.list.name),
    ['same', 'other'],
  );
  t.is(all.broken.length, 1);
  t.is(t.throws<CtnetError>(() => loadNetwork('missing', [a, b]))?.code, 7);
});

test('buildPluginConfig injects name and version, runtimeConfig only for declared capabilities, prevResult', (t) => {
  const conf = buildPluginConfig(
    { cniVersion: '0.0.0', name: 'x', type: 'portmap', capabilities: { portMappings: true, bandwidth: false } },
    'net',
    '1.0.0',
    { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }], bandwidth: {}, mac: 'x' },
    { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }] },
  );
  t.is(conf.name, 'net');
  t.is(conf.cniVersion, '1.0.0');
  t.deepEqual(conf.runtimeConfig, { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }] });
  t.deepEqual(conf.prevResult, { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] });
  const first = buildPluginConfig({ cniVersion: '1.0.0', name: 'x', type: 'bridge' }, 'net', '1.0.0', undefined, undefined);
  t.false('runtimeConfig' in first);
  t.false('prevResult' in first);
});
