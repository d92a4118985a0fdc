/**
 * Bad input against the reference plugins and ours (cni-table.ts): malformed JSON, a wrong type at every key the
 * plugins declare (generated from the declarations), bad CIDRs, ports and addresses, hostile container IDs,
 * interface names and netns paths, broken CNI_ARGS, missing variables, 10 MB of stdin. For ours every call must
 * end within the deadline with a CNI error (JSON with a code and a message, non-zero exit) and leave nothing
 * behind; where the reference wrongly succeeds or leaves state, the count is logged.
 */
import test from 'ava';
import type { Decoder } from '../core/index.js';
import { bridgeConfig } from '../plugins/bridge/schema.js';
import { hostLocalConfig } from '../plugins/host-local/schema.js';
import { portmapConfig } from '../plugins/portmap/schema.js';
import {
  type CallSpec,
  callPlugin,
  callTimeoutMs,
  fill,
  isCleanError,
  type Outcome,
  runTable,
  stateDiff,
  type World,
  type WorldState,
  worldState,
} from './cni-table.js';
import { sh } from './sandbox.js';

type Plugin = 'bridge' | 'host-local' | 'portmap' | 'loopback';

interface BadCase {
  name: string;
  plugin: Plugin;
  /** An object is sent as JSON; a string or Buffer as it is. */
  stdin: unknown;
  call?: CallSpec;
  /** 'any': not wrong in itself (a 300-character container ID): success is fine if DEL then leaves nothing. */
  expect?: 'error' | 'any';
}

const podIp = '10.78.0.5';
const ipam = {
  type: 'host-local',
  dataDir: '{dir}/ipam',
  ranges: [[{ subnet: '10.88.0.0/24' }]],
  routes: [{ dst: '0.0.0.0/0' }],
};
const base: Record<Plugin, Record<string, unknown>> = {
  'host-local': { cniVersion: '1.0.0', name: 'badnet', type: 'host-local', ipam },
  bridge: { cniVersion: '1.0.0', name: 'badnet', type: 'bridge', bridge: 'ctbbr0', isGateway: true, ipMasq: true, ipam },
  portmap: {
    cniVersion: '1.0.0',
    name: 'badnet',
    type: 'portmap',
    capabilities: { portMappings: true },
    stateDir: '{dir}/portmap',
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
    prevResult: {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'ctbbr1' }, { name: '{ifname}', sandbox: '{ns}' }],
      ips: [{ address: `${podIp}/24`, interface: 1 }],
    },
  },
  loopback: { cniVersion: '1.0.0', name: 'badnet', type: 'loopback' },
};
const plugins = Object.keys(base) as Plugin[];

/** A copy of `conf` with `value` at `path` (list indexes as numbers), creating what is missing on the way. */
function withValue(conf: Record<string, unknown>, path: (string | number)[], value: unknown): Record<string, unknown> {
  const out = structuredClone(conf);
  let at: Record<string | number, unknown> = out;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      at[key] = value;
      return;
    }
    const next = path[i + 1];
    if (typeof at[key] !== 'object' || at[key] === null) at[key] = typeof next === 'number' ? [] : {};
    at = at[key] as Record<string | number, unknown>;
  });
  return out;
}

/** Values of the wrong JSON type (or outside the declared bounds) for a declared field. */
function wrongValues(d: Decoder<unknown>): unknown[] {
  const e = d.expected;
  if (e === 'any value') return [];
  if (e === 'a string') return [1, true, [], {}];
  if (e === 'true or false') return ['true', 1, [], {}];
  if (e.startsWith('an integer')) {
    const bounds = e.match(/in (-?\d+)-(-?\d+)/);
    return ['1', 1.5, true, [], ...(bounds ? [Number(bounds[1]) - 1, Number(bounds[2]) + 1] : [])];
  }
  if (e.startsWith('one of')) return [5, 'pf', []];
  if (e.startsWith('a list')) return ['x', 1, {}];
  return ['x', 1, []];
}

/** Every declared key path of a declaration, with its decoder (lists are entered at index 0). */
function declaredPaths(d: Decoder<unknown>, path: (string | number)[] = []): [(string | number)[], Decoder<unknown>][] {
  const out: [(string | number)[], Decoder<unknown>][] = path.length ? [[path, d]] : [];
  const fields = (d as { fields?: Record<string, Decoder<unknown>> }).fields;
  const item = (d as { item?: Decoder<unknown> }).item;
  if (fields) for (const [k, f] of Object.entries(fields)) out.push(...declaredPaths(f, [...path, k]));
  if (item) out.push(...declaredPaths(item, [...path, 0]));
  return out;
}

function wrongTypeCases(): BadCase[] {
  const out: BadCase[] = [];
  const declarations: [Plugin, Decoder<unknown>][] = [
    ['bridge', bridgeConfig],
    ['host-local', hostLocalConfig],
    ['portmap', portmapConfig],
  ];
  for (const [plugin, declaration] of declarations) {
    for (const [path, d] of declaredPaths(declaration)) {
      if (path[0] === 'prevResult') continue;
      for (const value of wrongValues(d)) {
        out.push({ name: `${path.join('.')} = ${JSON.stringify(value)}`, plugin, stdin: withValue(base[plugin], path, value) });
      }
    }
  }
  return out;
}

const tenMegabytes = 10 * 1024 * 1024;

function perPlugin(): BadCase[] {
  const out: BadCase[] = [];
  const stdins: [string, unknown][] = [
    ['empty stdin', ''],
    ['truncated JSON', '{"cniVersion":"1.0.0","name":'],
    ['null', 'null'],
    ['a list', '[]'],
    ['a string', '"x"'],
    ['a number', '123'],
    ['binary garbage', Buffer.from([0, 1, 2, 0xff, 0xfe, 0x7b])],
    ['nested 100000 deep', `${'['.repeat(100_000)}${']'.repeat(100_000)}`],
    ['10 MB of garbage', Buffer.alloc(tenMegabytes, 0x41)],
  ];
  const envs: [string, CallSpec, ('error' | 'any')?][] = [
    ['container ID with ;', { containerId: 'a;reboot' }],
    ['container ID with $()', { containerId: '$(reboot)' }],
    ['container ID with backticks', { containerId: '`id`' }],
    ['container ID with a space', { containerId: 'a b' }],
    ['container ID with a newline', { containerId: 'a\nb' }],
    ['container ID ../x', { containerId: '../x' }],
    ['container ID with a slash', { containerId: 'x/../../etc' }],
    ['container ID starting with -', { containerId: '-x' }],
    ['container ID of 300 characters', { containerId: 'c'.repeat(300) }, 'any'],
    ['ifname empty', { ifname: '' }],
    ['ifname of 16 bytes', { ifname: 'e'.repeat(16) }],
    ['ifname of 300 characters', { ifname: 'e'.repeat(300) }],
    ['ifname with /', { ifname: 'eth/0' }],
    ['ifname ../etc', { ifname: '../etc' }],
    ['ifname ..', { ifname: '..' }],
    ['ifname with a newline', { ifname: 'eth\n0' }],
    ['ifname with a colon', { ifname: 'eth:0' }],
    ['netns missing file', { netns: '/nonexistent/netns' }],
    ['netns a regular file', { netns: '/etc/hostname' }],
    ['netns relative', { netns: 'relative/netns' }],
    ['netns ../..', { netns: '../../proc/1/ns/net' }],
    ['netns of 300 characters', { netns: `/${'n'.repeat(300)}` }],
    ['netns with a newline', { netns: '/tmp\n/x' }],
    ['netns a mount namespace', { netns: '/proc/1/ns/mnt' }],
    ['no CNI_CONTAINERID', { unset: ['CNI_CONTAINERID'] }],
    ['no CNI_IFNAME', { unset: ['CNI_IFNAME'] }],
    ['no CNI_NETNS', { unset: ['CNI_NETNS'] }],
    ['CNI_COMMAND lower case', { command: 'add' }],
    ['CNI_COMMAND unknown', { command: 'FROB' }],
    ['CNI_ARGS ;;;', { args: ';;;' }],
    ['CNI_ARGS key twice', { args: 'IgnoreUnknown=1;IP=10.88.0.5;IP=10.88.0.6' }],
    ['CNI_ARGS a=b=c', { args: 'IgnoreUnknown=1;a=b=c' }],
    ['CNI_ARGS without =', { args: 'IgnoreUnknown=1;IP' }],
    ['CNI_ARGS trailing ;', { args: 'IgnoreUnknown=1;' }],
  ];
  const confs: [string, Record<string, unknown>, ('error' | 'any')?][] = [
    ['cniVersion 9.9.9', { cniVersion: '9.9.9' }],
    ['cniVersion empty', { cniVersion: '' }],
    ['cniVersion missing', { cniVersion: undefined }],
    ['cniVersion v1.0.0', { cniVersion: 'v1.0.0' }],
    ['cniVersion 0.2.0 (older than ours)', { cniVersion: '0.2.0' }, 'any'],
    ['name empty', { name: '' }],
    ['name missing', { name: undefined }],
    ['name a/b', { name: 'a/b' }],
    ['name ../x', { name: '../x' }],
    ['name with a space', { name: 'a b' }],
    ['name with a newline', { name: 'a\nb' }],
    ['name of 300 characters', { name: 'n'.repeat(300) }, 'any'],
  ];
  for (const plugin of plugins) {
    for (const [name, stdin] of stdins) out.push({ name, plugin, stdin });
    for (const [name, call, expect] of envs) out.push({ name, plugin, stdin: base[plugin], call, ...(expect && { expect }) });
    for (const [name, change, expect] of confs) {
      out.push({ name, plugin, stdin: { ...base[plugin], ...change }, ...(expect && { expect }) });
    }
    out.push({
      name: '10 MB of padding in a valid config',
      plugin,
      stdin: { ...base[plugin], pad: 'p'.repeat(tenMegabytes) },
      expect: 'any',
    });
  }
  return out;
}

function badValues(): BadCase[] {
  const hl = (change: Record<string, unknown>) => ({ ...base['host-local'], ipam: { ...ipam, ...change } });
  const range = (r: Record<string, unknown>) => hl({ ranges: [[{ subnet: '10.88.0.0/24', ...r }]] });
  const pm = (mapping: Record<string, unknown>) =>
    withValue(base.portmap, ['runtimeConfig', 'portMappings'], [{ hostPort: 8080, containerPort: 80, ...mapping }]);
  const cases: [string, Plugin, unknown, CallSpec?][] = [
    ...['10.0.0.0/33', 'abc', '', '10.0.0.0', '::/129', '10.0.0.0/-1', '10.0.0.0/31', '1.2.3.4.5/24', '10.0.0.0/24\n'].map(
      (subnet): [string, Plugin, unknown] => [`subnet ${JSON.stringify(subnet)}`, 'host-local', range({ subnet })],
    ),
    ['rangeStart outside the subnet', 'host-local', range({ rangeStart: '10.99.0.5' })],
    ['rangeEnd not an address', 'host-local', range({ rangeEnd: 'x' })],
    ['rangeStart after rangeEnd', 'host-local', range({ rangeStart: '10.88.0.50', rangeEnd: '10.88.0.10' })],
    ['gateway IPv6 in an IPv4 range', 'host-local', range({ gateway: 'fd00::1' })],
    ['no ranges', 'host-local', hl({ ranges: [] })],
    ['an empty range set', 'host-local', hl({ ranges: [[]] })],
    ['overlapping range sets', 'host-local', hl({ ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: '10.88.0.0/25' }]] })],
    ['mixed families in one set', 'host-local', hl({ ranges: [[{ subnet: '10.88.0.0/24' }, { subnet: 'fd00::/64' }]] })],
    ['route dst not a CIDR', 'host-local', hl({ routes: [{ dst: 'x' }] })],
    ['route gw not an address', 'host-local', hl({ routes: [{ dst: '0.0.0.0/0', gw: 'x' }] })],
    ['dataDir on /proc', 'host-local', hl({ dataDir: '/proc/no-such-dir' })],
    ['dataDir on /sys', 'host-local', hl({ dataDir: '/sys/no-such-dir' })],
    ['requested IP not an address', 'host-local', { ...base['host-local'], runtimeConfig: { ips: ['x'] } }],
    ['requested IP outside every range', 'host-local', { ...base['host-local'], runtimeConfig: { ips: ['10.99.0.5'] } }],
    ['requested IP is the gateway', 'host-local', { ...base['host-local'], runtimeConfig: { ips: ['10.88.0.1'] } }],
    ['CNI_ARGS IP not an address', 'host-local', base['host-local'], { args: 'IP=x' }],
    ['CNI_ARGS IP the network address', 'host-local', base['host-local'], { args: 'IP=10.88.0.0' }],
    ['CNI_ARGS IP the broadcast address', 'host-local', base['host-local'], { args: 'IP=10.88.0.255' }],
    ['bridge name of 16 bytes', 'bridge', { ...base.bridge, bridge: 'b'.repeat(16) }],
    ['bridge name with /', 'bridge', { ...base.bridge, bridge: 'a/b' }],
    ['bridge name empty', 'bridge', { ...base.bridge, bridge: '' }],
    ['mtu 10', 'bridge', { ...base.bridge, mtu: 10 }],
    ['vlanTrunk id 0', 'bridge', { ...base.bridge, isGateway: false, vlanTrunk: [{ id: 0 }] }],
    ['vlanTrunk minID after maxID', 'bridge', { ...base.bridge, isGateway: false, vlanTrunk: [{ minID: 10, maxID: 5 }] }],
    ['hairpinMode and promiscMode', 'bridge', { ...base.bridge, hairpinMode: true, promiscMode: true }],
    ['ipMasq without ipam', 'bridge', { ...base.bridge, ipam: undefined }],
    ['mac not a MAC', 'bridge', { ...base.bridge, runtimeConfig: { mac: 'zz:zz:zz:zz:zz:zz' } }],
    ['mac too short', 'bridge', { ...base.bridge, runtimeConfig: { mac: '02:42:0a' } }],
    ['CNI_ARGS MAC not a MAC', 'bridge', base.bridge, { args: 'IgnoreUnknown=1;MAC=zz' }],

    ['ipam type unknown', 'bridge', { ...base.bridge, ipam: { ...ipam, type: 'no-such-ipam' } }],
    ['ipam type with a slash', 'bridge', { ...base.bridge, ipam: { ...ipam, type: '../../bin/sh' } }],
    ...[0, -1, 65536, 1e6].map((p): [string, Plugin, unknown] => [`hostPort ${p}`, 'portmap', pm({ hostPort: p })]),
    ...[0, 65536].map((p): [string, Plugin, unknown] => [`containerPort ${p}`, 'portmap', pm({ containerPort: p })]),
    ['hostPort missing', 'portmap', pm({ hostPort: undefined })],
    ['containerPort missing', 'portmap', pm({ containerPort: undefined })],
    ...['icmp', 'tcp ', 'all'].map((p): [string, Plugin, unknown] => [
      `protocol ${JSON.stringify(p)}`,
      'portmap',
      pm({ protocol: p }),
    ]),
    ...['300.1.1.1', 'abc', '10.0.0.1/24', '::1'].map((ip): [string, Plugin, unknown] => [
      `hostIP ${ip}`,
      'portmap',
      pm({ hostIP: ip }),
    ]),
    [
      'markMasqBit with externalSetMarkChain',
      'portmap',
      { ...base.portmap, markMasqBit: 13, externalSetMarkChain: 'KUBE-MARK-MASQ' },
    ],
    ['conditionsV4 with a newline', 'portmap', { ...base.portmap, conditionsV4: ['-s 1.2.3.4\n-j ACCEPT'] }],
    ['conditionsV4 with ;', 'portmap', { ...base.portmap, conditionsV4: ['ip saddr 1.2.3.4; flush ruleset'] }],
    ['externalSetMarkChain with a space', 'portmap', { ...base.portmap, externalSetMarkChain: 'A B' }],
    ['no prevResult', 'portmap', { ...base.portmap, prevResult: undefined }],
    ['prevResult cniVersion 9.9.9', 'portmap', withValue(base.portmap, ['prevResult', 'cniVersion'], '9.9.9')],
    ['prevResult not an object', 'portmap', { ...base.portmap, prevResult: 'x' }],
    ['prevResult ips not a list', 'portmap', withValue(base.portmap, ['prevResult', 'ips'], 'x')],
    ['prevResult address not a CIDR', 'portmap', withValue(base.portmap, ['prevResult', 'ips', 0, 'address'], 'garbage')],
    [
      'prevResult has no address on CNI_IFNAME',
      'portmap',
      withValue(base.portmap, ['prevResult', 'interfaces', 1, 'name'], 'eth0'),
      { ifname: 'eth1' },
    ],
  ];
  return [
    ...cases.map(([name, plugin, stdin, call]): BadCase => ({ name, plugin, stdin, ...(call && { call }) })),
    // ctnet's own IPAM runs in-process when CNI_PATH has no binary of that name: success is right here.
    {
      name: 'CNI_PATH without the IPAM plugin',
      plugin: 'bridge',
      stdin: base.bridge,
      call: { path: '/nonexistent' },
      expect: 'any',
    },
  ];
}

const cases: BadCase[] = [...perPlugin(), ...wrongTypeCases(), ...badValues()];

interface Seen {
  outcome: Outcome;
  /** State changed by the call (and by its DEL when it succeeded). */
  leftovers: string[];
}

async function prepare(w: World): Promise<WorldState> {
  // The route to portmap's pod address, and the network's own state (bridge, base chains) made once.
  await sh('ip', ['-n', w.host, 'link', 'add', 'ctbbr1', 'type', 'bridge']);
  await sh('ip', ['-n', w.host, 'link', 'set', 'ctbbr1', 'addrgenmode', 'none']);
  await sh('ip', ['-n', w.host, 'addr', 'add', '10.78.0.1/24', 'dev', 'ctbbr1']);
  await sh('ip', ['-n', w.host, 'link', 'set', 'ctbbr1', 'up']);
  for (const plugin of ['portmap', 'bridge'] as const) {
    const stdin = JSON.stringify(fill(base[plugin], w, { ifname: 'ewarm' }));
    for (const command of ['ADD', 'DEL']) await callPlugin(w, plugin, { containerId: 'warmup', ifname: 'ewarm', command }, stdin);
  }
  return worldState(w);
}

test('bad input: ours answers every call with a clean CNI error in time and leaves nothing; the reference is counted', async (t) => {
  t.timeout(20 * 60_000);
  const baselines = new Map<World, WorldState>();
  const results = await runTable(t, ['reference', 'ours'], cases, 3, async (w, c, i): Promise<Seen> => {
    if (!baselines.has(w)) baselines.set(w, await prepare(w));
    const call: CallSpec = { containerId: `bad${i}`, ifname: 'ebad', ...c.call };
    const raw = typeof c.stdin === 'string' || Buffer.isBuffer(c.stdin) ? c.stdin : JSON.stringify(c.stdin);
    const stdin = typeof raw === 'string' ? fill(raw, w, { ifname: call.ifname ?? 'ebad' }) : raw;
    const outcome = await callPlugin(w, c.plugin, call, stdin);
    if (outcome.exitCode === 0) await callPlugin(w, c.plugin, { ...call, command: 'DEL' }, stdin);
    const after = await worldState(w);
    const leftovers = stateDiff(baselines.get(w) as WorldState, after).filter((l) => !/ctbbr0|10\.88\.0\.1\/24/.test(l));
    // What the reference leaves is counted once, against the case that left it.
    baselines.set(w, after);
    return { outcome, leftovers };
  });
  const ref = { wrongSuccess: [] as string[], leftState: 0, hung: 0 };
  // Every problem of ours is listed, not only the first.
  const problems: string[] = [];
  cases.forEach((c, i) => {
    const label = `${c.plugin}: ${c.name}`;
    const o = results.ours[i] as Seen;
    const r = results.reference[i] as Seen;
    if (r.outcome.exitCode === 0 && c.expect !== 'any') ref.wrongSuccess.push(label);
    if (r.leftovers.length) ref.leftState++;
    if (r.outcome.timedOut) ref.hung++;
    const answer = `exit ${o.outcome.exitCode} ${o.outcome.stdout.slice(0, 200)} ${o.outcome.stderr.slice(0, 200)}`;
    if (o.outcome.timedOut) problems.push(`${label}: no answer within ${callTimeoutMs / 1000}s`);
    else if (c.expect === 'any' && o.outcome.exitCode === 0) {
      if (o.outcome.json?.cniVersion === undefined) problems.push(`${label}: success without a result: ${answer}`);
    } else if (!isCleanError(o.outcome)) problems.push(`${label}: not a clean CNI error: ${answer}`);
    if (o.leftovers.length) problems.push(`${label}: left ${o.leftovers.join(' | ')}`);
  });
  t.log(`${cases.length} bad inputs per implementation; ours: ${cases.length - problems.length} answered cleanly`);
  t.log(
    `reference: ${ref.wrongSuccess.length} wrong successes, ${ref.leftState} calls left state, ${ref.hung} hung past ${callTimeoutMs / 1000}s`,
  );
  for (const w of ref.wrongSuccess) t.log(`  reference accepts ${w}`);
  t.deepEqual(problems, []);
  t.true(cases.length >= 300);
});
