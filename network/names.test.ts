import test from 'ava';
import { hostsBlockEnd, hostsBlockStart, withPeerBlock } from './names.js';

const base = '127.0.0.1\tlocalhost\n10.1.0.2\tweb\n';

test('withPeerBlock appends the block, replaces it on the next change and removes it when empty', (t) => {
  const one = withPeerBlock(base, [{ ip: '10.1.0.3', names: ['db', 'abcdef012345'] }]);
  t.is(one, `${base}${hostsBlockStart}\n10.1.0.3\tdb abcdef012345\n${hostsBlockEnd}\n`);
  const two = withPeerBlock(one, [{ ip: '10.1.0.4', names: ['cache'] }]);
  t.is(two, `${base}${hostsBlockStart}\n10.1.0.4\tcache\n${hostsBlockEnd}\n`);
  t.is(withPeerBlock(two, []), base);
  t.is(withPeerBlock(base, []), base, 'nothing to add leaves the file alone');
});
