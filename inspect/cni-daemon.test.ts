import test from 'ava';
import { cniDaemonFinding, cniDaemonSockets } from './cni-daemon.js';

const listing = [
  'Num       RefCount Protocol Flags    Type St Inode Path',
  '00000000b2fad3ca: 00000002 00000000 00010000 0001 01 3530581 @ctnet-cni-e3c79665a4e4@@@@@@@@@@@@@@@',
  '00000000c1: 00000002 00000000 00010000 0001 01 3530582 /run/containerd/containerd.sock',
].join('\n');

test('daemon sockets are found by name, padding and other sockets ignored', (t) => {
  t.deepEqual(cniDaemonSockets(listing), ['ctnet-cni-e3c79665a4e4']);
  t.deepEqual(cniDaemonSockets('Num RefCount\n'), []);
});

test('the finding says whether this build is served, served by another build, or not at all', (t) => {
  t.is(cniDaemonFinding(listing, 'ctnet-cni-e3c79665a4e4').severity, 'ok');
  const stale = cniDaemonFinding(listing, 'ctnet-cni-000000000000');
  t.is(stale.severity, 'warn');
  t.regex(stale.detail, /another build/);
  t.is(cniDaemonFinding('Num RefCount\n', 'ctnet-cni-000000000000').severity, 'info');
});
