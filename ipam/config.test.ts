import test from 'ava';
import { CtnetError, ErrorCode, formatIp, type NetConf } from '../core/index.js';
import { defaultDataDir, parseIpamConfig } from './config.js';
import { requestedIps } from './requested.js';

function conf(ipam: Record<string, unknown>, extra: Partial<NetConf> = {}): NetConf {
  return { cniVersion: '1.1.0', name: 'net1', type: 'host-local', ipam: { type: 'host-local', ...ipam }, ...extra };
}

function invalidMessage(t: import('ava').ExecutionContext, fn: () => unknown): string {
  const err = t.throws(fn, { instanceOf: CtnetError });
  t.is((err as CtnetError).code, ErrorCode.invalidConfig);
  return (err as CtnetError).message;
}

test('defaults: gateway .1, rangeStart .1, rangeEnd broadcast-1 (IPv4) or last (IPv6), dataDir', (t) => {
  const cfg = parseIpamConfig(conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00:1::/64' }]] }));
  t.is(cfg.dataDir, defaultDataDir);
  t.is(cfg.network, 'net1');
  const [v4, v6] = cfg.rangeSets;
  t.is(v4?.family, 4);
  t.is(formatIp(v4!.ranges[0]!.gateway), '10.1.0.1');
  t.is(formatIp(v4!.ranges[0]!.rangeStart), '10.1.0.1');
  t.is(formatIp(v4!.ranges[0]!.rangeEnd), '10.1.0.254');
  t.is(formatIp(v6!.ranges[0]!.rangeEnd), 'fd00:1::ffff:ffff:ffff:ffff');
  t.is(v6?.index, 1);
});

test('legacy top-level range is prepended; runtimeConfig.ipRanges before it', (t) => {
  const cfg = parseIpamConfig(
    conf(
      { subnet: '10.2.0.0/24', gateway: '10.2.0.254', ranges: [[{ subnet: '10.3.0.0/24' }]] },
      { runtimeConfig: { ipRanges: [[{ subnet: '10.9.0.0/24' }]] } },
    ),
  );
  t.deepEqual(
    cfg.rangeSets.map((s) => s.path),
    ['runtimeConfig.ipRanges[0]', 'ipam', 'ipam.ranges[0]'],
  );
  t.is(formatIp(cfg.rangeSets[1]!.ranges[0]!.gateway), '10.2.0.254');
});

test('errors name the key path', (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: '10.1.1.0/33' }]] },
      /ipam\.ranges\[0\]\[1\]\.subnet "10\.1\.1\.0\/33" is not a valid CIDR/,
    ],
    [{ ranges: [[{ subnet: 'banana' }]] }, /ipam\.ranges\[0\]\[0\]\.subnet/],
    [
      { ranges: [[{ subnet: '10.1.0.0/24', gateway: '10.2.0.1' }]] },
      /ipam\.ranges\[0\]\[0\]\.gateway 10\.2\.0\.1 is outside subnet 10\.1\.0\.0\/24/,
    ],
    [
      { ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.1.5' }]] },
      /ipam\.ranges\[0\]\[0\]\.rangeStart 10\.1\.1\.5 is outside/,
    ],
    [{ ranges: [[{ subnet: '10.1.0.0/24', rangeEnd: '10.0.0.5' }]] }, /ipam\.ranges\[0\]\[0\]\.rangeEnd/],
    [
      { ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.50', rangeEnd: '10.1.0.10' }]] },
      /ipam\.ranges\[0\]\[0\]\.rangeStart 10\.1\.0\.50 is after ipam\.ranges\[0\]\[0\]\.rangeEnd 10\.1\.0\.10/,
    ],
    [{ ranges: [[{ subnet: '10.1.0.0/31' }]] }, /too small/],
    [{ ranges: [[{ subnet: '10.1.0.0/32' }]] }, /too small/],
    [{ ranges: [[{ subnet: 'fd00::/127' }]] }, /too small/],
    [{ ranges: [[{ subnet: '10.1.0.7/24' }]] }, /host bits set: the network address is 10\.1\.0\.0\/24/],
    [{ ranges: [[{ subnet: '10.1.0.0/24', gateway: 'fd00::1' }]] }, /gateway fd00::1 is not an IPv4 address/],
    [{ ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: 'fd00::/64' }]] }, /ipam\.ranges\[0\]\[1\]\.subnet mixes IPv6/],
    [
      { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.1.0.0/16' }]] },
      /range set ipam\.ranges\[0\] .* overlaps range set ipam\.ranges\[1\]/,
    ],
    [
      { ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: '10.1.0.0/25' }]] },
      /ipam\.ranges\[0\]\[0\] .* overlaps ipam\.ranges\[0\]\[1\]/,
    ],
    [{ ranges: [[]] }, /ipam\.ranges\[0\] must be a non-empty list/],
    [{}, /no IP ranges specified/],
    [
      { subnet: '10.1.0.0/24', rangeStart: '10.1.0.9', rangeEnd: '10.1.0.3' },
      /ipam\.rangeStart 10\.1\.0\.9 is after ipam\.rangeEnd/,
    ],
    [{ ranges: [[{ subnet: '10.1.0.0/24' }]], routes: [{ dst: '0.0.0.0' }] }, /ipam\.routes\[0\]\.dst/],
    [{ ranges: [[{ subnet: '10.1.0.0/24' }]], routes: [{ dst: '0.0.0.0/0', gw: 'x' }] }, /ipam\.routes\[0\]\.gw/],
  ];
  for (const [ipam, pattern] of cases)
    t.regex(
      invalidMessage(t, () => parseIpamConfig(conf(ipam))),
      pattern,
    );
});

test('split ranges of one subnet in one set are fine when they do not overlap', (t) => {
  const cfg = parseIpamConfig(
    conf({
      ranges: [
        [
          { subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.19' },
          { subnet: '10.1.0.0/24', rangeStart: '10.1.0.20', rangeEnd: '10.1.0.29' },
        ],
      ],
    }),
  );
  t.is(cfg.rangeSets[0]?.ranges.length, 2);
});

test('requested IPs: CNI_ARGS (comma list), args.cni.ips and runtimeConfig.ips, one per set', (t) => {
  const c = conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] }, { args: { cni: { ips: ['fd00::9'] } } });
  const cfg = parseIpamConfig(c);
  const got = requestedIps(cfg, c, 'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.9/24');
  t.is(formatIp(got.get(0)!), '10.1.0.9');
  t.is(formatIp(got.get(1)!), 'fd00::9');
  const rc = conf({ ranges: [[{ subnet: '10.1.0.0/24' }]] }, { runtimeConfig: { ips: ['10.1.0.77'] } });
  t.is(formatIp(requestedIps(parseIpamConfig(rc), rc, '').get(0)!), '10.1.0.77');
});

test('requested IPs that cannot be placed are code 7', (t) => {
  const c = conf({ ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.20' }]] });
  const cfg = parseIpamConfig(c);
  t.regex(
    invalidMessage(t, () => requestedIps(cfg, c, 'IP=10.2.0.5')),
    /10\.2\.0\.5 .* in no configured range/,
  );
  t.regex(
    invalidMessage(t, () => requestedIps(cfg, c, 'IP=10.1.0.30')),
    /in no configured range/,
  );
  t.regex(
    invalidMessage(t, () => requestedIps(cfg, c, 'IP=10.1.0.11,10.1.0.12')),
    /already requested/,
  );
  const g = conf({ ranges: [[{ subnet: '10.1.0.0/24', gateway: '10.1.0.5' }]] });
  t.regex(
    invalidMessage(t, () => requestedIps(parseIpamConfig(g), g, 'IP=10.1.0.5')),
    /is the gateway/,
  );
  const bad = t.throws(() => requestedIps(cfg, c, 'IP=10.1.0.999'), { instanceOf: CtnetError });
  t.is((bad as CtnetError).code, ErrorCode.invalidEnv);
});
