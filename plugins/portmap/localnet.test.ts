import test from 'ava';
import { interfaceToward } from './localnet.js';

// /proc/net/route: destination, gateway and mask are little-endian hex words.
const table = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
cni0\t000016AC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
down0\t000116AC\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;

test('interfaceToward takes the longest matching prefix of routes that are up', (t) => {
  t.is(interfaceToward('172.22.0.5', table), 'cni0');
  t.is(interfaceToward('172.18.3.4', table), 'eth0');
  t.is(interfaceToward('8.8.8.8', table), 'eth0');
  t.is(interfaceToward('172.22.1.5', table), 'eth0');
});
