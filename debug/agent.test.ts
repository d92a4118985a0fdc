import test from 'ava';
import { agentFinding, agentSockets } from './agent.js';

const listing = [
  'Num       RefCount Protocol Flags    Type St Inode Path',
  '00000000b2fad3ca: 00000002 00000000 00010000 0001 01 3530581 @ctnet-agent-e3c79665a4e4',
  '00000000c1: 00000002 00000000 00010000 0001 01 3530582 /run/containerd/containerd.sock',
].join('\n');

test('agent sockets are found by name, other sockets ignored', (t) => {
  t.deepEqual(agentSockets(listing), ['ctnet-agent-e3c79665a4e4']);
  t.deepEqual(agentSockets('Num RefCount\n'), []);
});

test('the finding says whether this build is served, served by another build, or not at all', (t) => {
  t.is(agentFinding(listing, 'ctnet-agent-e3c79665a4e4').severity, 'ok');
  const stale = agentFinding(listing, 'ctnet-agent-000000000000');
  t.is(stale.severity, 'warn');
  t.regex(stale.detail, /another build/);
  t.is(agentFinding('Num RefCount\n', 'ctnet-agent-000000000000').severity, 'info');
});
