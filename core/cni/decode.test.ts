import test from 'ava';
import { CtnetError } from '../errors.js';
import { bool, int, list, object, str } from './decode.js';

const mapping = object({ hostPort: int(), containerPort: int(), protocol: str(), hostIP: str() });
const conf = object({ name: str(), flag: bool(), ports: list(mapping), nested: object({ list: list(str()) }) });

test('keys match case-insensitively and take the declared spelling', (t) => {
  const out = conf.decode({ NAME: 'n', Ports: [{ HostPort: 80, CONTAINERPORT: 8080, Protocol: 'tcp', HostIP: '' }] }, '');
  t.deepEqual(out, { name: 'n', ports: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp', hostIP: '' }] });
});

test('when several keys match one field the last wins; an exact key is no better than a folded one', (t) => {
  t.deepEqual(conf.decode({ name: 'a', Name: 'b' }, ''), { name: 'b' });
  t.deepEqual(conf.decode({ Name: 'b', name: 'a' }, ''), { name: 'a' });
});

test('null leaves a scalar as it was and clears a list; a null element is its zero value', (t) => {
  t.deepEqual(conf.decode({ name: 'a', Name: null, flag: null }, ''), { name: 'a' });
  t.deepEqual(conf.decode({ ports: [{ hostPort: 1 }], Ports: null }, ''), {});
  t.deepEqual(conf.decode({ ports: [null], nested: { list: ['x', null] } }, ''), { ports: [{}], nested: { list: ['x', ''] } });
});

test('unknown keys are kept as they are', (t) => {
  t.deepEqual(conf.decode({ other: { X: 1 }, name: 'n' }, ''), { other: { X: 1 }, name: 'n' });
});

test('a wrong type is code 7 naming the key path', (t) => {
  for (const [input, path] of [
    [{ flag: 'true' }, 'flag'],
    [{ ports: [{ hostPort: '80' }] }, 'ports[0].hostPort'],
    [{ ports: [{ hostPort: 80.5 }] }, 'ports[0].hostPort'],
    [{ ports: {} }, 'ports'],
    [{ nested: [] }, 'nested'],
  ] as const) {
    const e = t.throws(() => conf.decode(input, ''), { instanceOf: CtnetError });
    t.is(e?.code, 7);
    t.true(e?.message.includes(`"${path}"`), e?.message);
  }
});

test('with a problems list, fields that do not decode are left out and recorded', (t) => {
  const problems: string[] = [];
  t.deepEqual(conf.decode({ name: 'n', flag: 'yes', ports: [{ hostPort: 'x', containerPort: 1 }] }, '', problems), {
    name: 'n',
    ports: [{ containerPort: 1 }],
  });
  t.is(problems.length, 2);
});
