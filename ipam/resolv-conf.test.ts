import test from 'ava';
import { parseResolvConfText } from './resolv-conf.js';

test('resolv.conf keywords map to CNI dns fields; comments and junk are skipped', (t) => {
  const text =
    '# comment\n; other comment\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.org\nsearch a.example b.example\noptions ndots:2 edns0\nbogus\n';
  t.deepEqual(parseResolvConfText(text), {
    nameservers: ['10.0.0.53', 'fd00::53'],
    domain: 'example.org',
    search: ['a.example', 'b.example'],
    options: ['ndots:2', 'edns0'],
  });
  t.deepEqual(parseResolvConfText(''), {});
});
