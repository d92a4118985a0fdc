import test from 'ava';
import { parseProcNet } from './sockets.js';

test('parseProcNet decodes little-endian addresses, ports and listening state', (t) => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0200480A:0050 0100480A:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0`;
  const entries = parseProcNet(tcp, 'tcp', 4);
  t.deepEqual(
    entries.map((e) => [e.address, e.port, e.listening]),
    [
      ['0.0.0.0', 80, true],
      ['127.0.0.1', 8080, true],
      ['10.72.0.2', 80, false],
    ],
  );
  const tcp6 = `  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A`;
  t.deepEqual(
    parseProcNet(tcp6, 'tcp', 6).map((e) => [e.address, e.port]),
    [['::', 80]],
  );
});
