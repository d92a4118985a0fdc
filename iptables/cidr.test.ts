import test from 'ava';
import { parseCidr } from './cidr.js';

test('parseCidr gives canonical address, subnet and host for IPv4', (t) => {
  t.deepEqual(parseCidr('10.22.0.5/24'), {
    family: 4,
    address: '10.22.0.5',
    prefix: 24,
    subnet: '10.22.0.0/24',
    host: '10.22.0.5/32',
  });
  t.is(parseCidr('10.22.0.5').host, '10.22.0.5/32');
  t.is(parseCidr('10.22.0.5').subnet, '10.22.0.5/32');
});

test('parseCidr compresses IPv6 the way iptables and nft print it', (t) => {
  const p = parseCidr('FD00:0:0:0:0:0:0:5/64');
  t.is(p.address, 'fd00::5');
  t.is(p.subnet, 'fd00::/64');
  t.is(p.host, 'fd00::5/128');
  t.is(parseCidr('2001:db8:0:1:0:0:0:1/48').subnet, '2001:db8::/48');
  t.is(parseCidr('::ffff:10.0.0.1/128').address, '::ffff:a00:1');
  t.is(parseCidr('1:0:0:1:0:0:0:1/128').address, '1:0:0:1::1');
});

test('parseCidr rejects anything that is not an address with code 7', (t) => {
  for (const bad of [
    '10.22.0.5/33',
    'fd00::5/129',
    '10.22.0.5/-1',
    '10.22.0.5/24 -j ACCEPT',
    'x',
    '',
    'fe80::1%eth0/64',
    '10.0.0.256/8',
  ]) {
    const err = t.throws(() => parseCidr(bad), undefined, bad);
    t.is((err as { code?: number }).code, 7, bad);
  }
});
