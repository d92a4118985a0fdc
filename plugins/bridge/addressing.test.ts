import test from 'ava';
import { applyGatewayPolicy, canonical, firstHost, prefixLength } from './addressing.js';

test('gateway, subnet and prefix of IPv4 and IPv6 addresses', (t) => {
  t.is(firstHost('10.1.2.3/24'), '10.1.2.1');
  t.is(firstHost('fd00:1:0:0::7/64'), 'fd00:1::1');
  t.is(prefixLength('fd00:1::7/64'), 64);
  t.is(canonical('fd00:0:0::1'), 'fd00::1');
  t.is(canonical('10.0.0.1'), '10.0.0.1');
});

test('a malformed IPAM address is a code 7 error naming it', (t) => {
  t.throws(() => firstHost('10.1.2/24'), { message: /invalid address "10\.1\.2\/24" from IPAM/ });
  t.throws(() => canonical('nope'), { message: /invalid IP address "nope"/ });
});

test('isGateway fills gateways; isDefaultGateway adds one default route per family', (t) => {
  const { ips, routes } = applyGatewayPolicy([{ address: '10.1.2.3/24' }, { address: 'fd00::3/64' }], [], {
    isGateway: true,
    isDefaultGateway: true,
  });
  t.deepEqual(
    ips.map((i) => i.gateway),
    ['10.1.2.1', 'fd00::1'],
  );
  t.deepEqual(routes, [
    { dst: '0.0.0.0/0', gw: '10.1.2.1' },
    { dst: '::/0', gw: 'fd00::1' },
  ]);
});
