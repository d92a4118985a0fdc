import test from 'ava';
import { Address6 } from 'ip-address';
import {
  type Cidr,
  contains,
  containsCidr,
  familyOf,
  formatCidr,
  formatIp,
  type IpAddr,
  ipBytes,
  ipFromBytes,
  isIpText,
  lastOf,
  networkOf,
  overlaps,
  parseCidr,
  parseCidrOrHost,
  parseIp,
  parseIpOrCidr,
  requireCidr,
  subnetOf,
} from './index.js';

test('IPv4 parses and formats as a dotted quad', (t) => {
  const ip = parseIp('10.1.2.3');
  t.deepEqual(ip, { family: 4, value: 0x0a010203n });
  t.is(formatIp(ip!), '10.1.2.3');
  t.is(formatIp({ family: 4, value: 0xffffffffn }), '255.255.255.255');
});

test('invalid addresses are rejected', (t) => {
  for (const bad of [
    '10.1.2',
    '10.1.2.256',
    '010.1.2.3',
    '1.2.3.4.5',
    'fd00:::1',
    'fd00::1::2',
    '1:2:3:4:5:6:7:8:9',
    'g::1',
    '',
    'abc',
  ]) {
    t.is(parseIp(bad), undefined, bad);
  }
});

test('IPv6 formatting agrees with ip-address (RFC 5952, as Go prints lease file names)', (t) => {
  const samples = [
    'fd00:0:0:1::5',
    '2001:db8:0:0:1:0:0:1',
    '::',
    '::1',
    'fd00::',
    'fd00:0:1:2:3:4:5:6',
    '1:0:0:2:0:0:0:3',
    'FD00::ABCD',
  ];
  // Random addresses with many zero groups exercise the compression rules.
  for (let i = 0; i < 300; i++) {
    const groups = Array.from({ length: 8 }, () => (Math.random() < 0.5 ? 0 : Math.floor(Math.random() * 0x10000)));
    samples.push(groups.map((g) => g.toString(16)).join(':'));
  }
  for (const s of samples) {
    const ours = parseIp(s);
    t.truthy(ours, s);
    t.is(formatIp(ours!), new Address6(s).correctForm(), s);
    t.is(ours!.value, BigInt(new Address6(s).bigInt()), s);
  }
});

test('IPv6 with an embedded IPv4 suffix parses', (t) => {
  t.is(formatIp(parseIp('::ffff:10.0.0.1')!), '::ffff:a00:1');
});

test('CIDR math: network, last, contains', (t) => {
  const c = parseCidr('10.1.0.77/24')!;
  t.is(c.prefix, 24);
  t.is(formatIp(networkOf(c)), '10.1.0.0');
  t.is(formatIp(lastOf(c)), '10.1.0.255');
  t.true(contains(c, parseIp('10.1.0.200')!));
  t.false(contains(c, parseIp('10.1.1.0')!));
  t.false(contains(c, parseIp('fd00::1')!));
  const v6 = parseCidr('fd00:1::/64')!;
  t.is(formatIp(lastOf(v6)), 'fd00:1::ffff:ffff:ffff:ffff');
  t.is(parseCidr('10.0.0.0/33'), undefined);
  t.is(parseCidr('10.0.0.0'), undefined);
  t.is(parseCidr('fd00::/129'), undefined);
  t.is(formatIp(parseIpOrCidr('10.0.0.9/24')!), '10.0.0.9');
});

test('subnets: overlap, containment, host CIDRs and families', (t) => {
  const c = (text: string) => parseCidr(text) as Cidr;
  t.true(overlaps(c('10.0.0.0/8'), c('10.22.0.0/24')));
  t.false(overlaps(c('10.0.0.0/24'), c('10.0.1.0/24')));
  t.false(overlaps(c('::/0'), c('10.0.0.0/8')));
  t.true(containsCidr(c('10.22.0.0/16'), c('10.22.3.0/24')));
  t.false(containsCidr(c('10.22.3.0/24'), c('10.22.0.0/16')));
  t.is(formatCidr(subnetOf(c('fd00:1::7/64'))), 'fd00:1::/64');
  t.is(formatCidr(parseCidrOrHost('10.0.0.5') as Cidr), '10.0.0.5/32');
  t.is(parseCidrOrHost('10.0.0.5/33'), undefined);
  t.is(familyOf('fd00::/64'), 6);
  t.is(familyOf('10.1.2.3'), 4);
  t.is(familyOf('not:an:address'), undefined);
  t.deepEqual(ipBytes(parseIp('10.1.2.3') as IpAddr), Buffer.from([10, 1, 2, 3]));
  t.is(formatIp(ipFromBytes(ipBytes(parseIp('fd00::9') as IpAddr))), 'fd00::9');
  const err = t.throws(() => requireCidr('10.0.0.0/x', 'subnet'));
  t.is((err as { code?: number }).code, 7);
});

test('isIpText decides as parseIp does', (t) => {
  for (const text of [
    '10.0.0.1',
    '0.0.0.0',
    '255.255.255.255',
    '010.0.0.1',
    '1.2.3.04',
    '256.1.1.1',
    '1.2.3',
    '1.2.3.4.5',
    ' 1.2.3.4',
    '::',
    '::1',
    'fd00::5',
    '::ffff:10.0.0.1',
    'fe80::1%eth0',
    '1::2::3',
    '12345::',
    'a:b:c:d:e:f:1:2',
    'a:b:c:d:e:f:1:2:3',
    '',
  ]) {
    t.is(isIpText(text), parseIp(text) !== undefined, text);
  }
});
