import test from 'ava';
import { Address6 } from 'ip-address';
import { contains, formatIp, lastOf, networkOf, parseCidr, parseIp, parseIpOrCidr } from './index.js';

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
