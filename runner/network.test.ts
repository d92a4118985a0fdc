import test from 'ava';
import { cidrsOverlap, pickSubnet } from './network.js';

test('the default subnet avoids Docker, Podman and every route the host has', (t) => {
  t.is(pickSubnet([]), '10.90.0.0/24');
  t.is(pickSubnet(['10.90.0.0/24', '10.90.1.128/25']), '10.90.2.0/24');
  t.is(pickSubnet(['10.0.0.0/8']), '192.168.200.0/24');
  t.false(['172.17.0.0/16', '10.88.0.0/16'].some((r) => cidrsOverlap(pickSubnet(['10.0.0.0/8']), r)));
  t.throws(() => pickSubnet(['0.0.0.0/0']));
  t.true(cidrsOverlap('10.88.0.0/16', '10.88.5.0/24'));
  t.false(cidrsOverlap('10.89.255.0/24', '10.90.0.0/24'));
});
