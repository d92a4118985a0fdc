import test from 'ava';
import type { CtnetError } from '../core/index.js';
import { cidrString, contains, containsCidr, formatIp, nthAddress, overlaps, parseCidr, parseIp } from './cidr.js';

test('parseCidr clears host bits and rejects bad input with code 7', (t) => {
  t.is(cidrString(parseCidr('10.1.2.3/16')), '10.1.0.0/16');
  t.is(cidrString(parseCidr('fd00:1:2:3::5/64')), 'fd00:1:2:3::/64');
  for (const bad of ['10.1.0.0', '10.1.0.0/33', '10.1.0/24', 'x/8', '10.0.0.0/8/1', 'fd00::/129']) {
    t.is(t.throws<CtnetError>(() => parseCidr(bad))?.code, 7, bad);
  }
});

test('overlap and containment across families', (t) => {
  t.true(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.5.0.0/16')));
  t.false(overlaps(parseCidr('10.1.0.0/24'), parseCidr('10.1.1.0/24')));
  t.false(overlaps(parseCidr('10.0.0.0/8'), parseCidr('fd00::/8')));
  t.true(containsCidr(parseCidr('10.1.0.0/24'), parseCidr('10.1.0.128/25')));
  t.false(containsCidr(parseCidr('10.1.0.128/25'), parseCidr('10.1.0.0/24')));
  t.true(contains(parseCidr('fd00::/64'), 'fd00::1'));
  t.false(contains(parseCidr('fd00::/64'), '10.0.0.1'));
});

test('IPv6 text round-trips in RFC 5952 form', (t) => {
  for (const [input, out] of [
    ['fd00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:1:0:0:0:0', '2001:db8:0:1::'],
    ['::', '::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
  ]) {
    const ip = parseIp(input as string);
    t.is(formatIp(ip.family, ip.value), out as string, input);
  }
  t.is(nthAddress(parseCidr('10.9.0.0/24'), 1), '10.9.0.1');
});
