import test from 'ava';
import { environmentMismatch } from './run.js';

test('a caller is served only with the state, plugin path and network search path the agent has', (t) => {
  const own = { CTNET_ROOT: '/var/lib/ctnet', CNI_PATH: '/opt/cni/bin', NETCONFPATH: '/etc/cni/net.d' };
  t.is(environmentMismatch({ ...own }, '/', own), undefined);
  t.is(
    environmentMismatch({ ...own, CTNET_LOG_LEVEL: 'debug', PATH: '/bin' }, '/', own),
    undefined,
    'logging and PATH do not matter',
  );
  t.is(environmentMismatch({ ...own, NETCONFPATH: '/tmp/other' }, '/', own), "NETCONFPATH differs from the agent's");
  t.is(environmentMismatch({ ...own, CNI_PATH: '/usr/lib/cni' }, '/', own), "CNI_PATH differs from the agent's");
  t.is(
    environmentMismatch({ CNI_PATH: own.CNI_PATH, NETCONFPATH: own.NETCONFPATH }, '/', { ...own, CTNET_ROOT: '' }),
    undefined,
    'an unset root is the default root',
  );
});
