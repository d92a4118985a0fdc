import test from 'ava';
import { CtnetError } from '../errors.js';
import { parseCniArgs, pickCniArgs } from './args.js';
import { validateContainerId, validateIfname, validateNetworkName } from './names.js';

test('container IDs that would break file names or rule comments are code 4', (t) => {
  for (const id of ['a b', 'a\nb', 'x;rm', '-lead', '.dot', 'a/b', 'x"y', '']) {
    t.is(t.throws(() => validateContainerId(id), { instanceOf: CtnetError })?.code, 4, JSON.stringify(id));
  }
  t.notThrows(() => validateContainerId('0123abcDEF_.-x'));
});

test('network names follow the same rule with code 7', (t) => {
  t.is(t.throws(() => validateNetworkName('bad name'), { instanceOf: CtnetError })?.code, 7);
  t.is(t.throws(() => validateNetworkName(undefined), { instanceOf: CtnetError })?.code, 7);
  t.notThrows(() => validateNetworkName('ctnet'));
});

test('interface names: 1-15 bytes, no slash, colon or whitespace', (t) => {
  for (const name of ['', 'a'.repeat(16), 'eth/0', 'eth:0', 'eth 0', '.', '..', 'ééééééééé']) {
    t.is(t.throws(() => validateIfname(name), { instanceOf: CtnetError })?.code, 4, JSON.stringify(name));
  }
  t.notThrows(() => validateIfname('a'.repeat(15)));
});

test('CNI_ARGS parse into pairs; malformed pairs are code 4', (t) => {
  t.deepEqual(
    [...parseCniArgs('IP=10.0.0.5;MAC=aa:bb:cc:dd:ee:ff;IP=10.0.0.5')],
    [
      ['IP', '10.0.0.5'],
      ['MAC', 'aa:bb:cc:dd:ee:ff'],
    ],
  );
  t.is(t.throws(() => parseCniArgs('IP'), { instanceOf: CtnetError })?.code, 4);
  t.is(t.throws(() => parseCniArgs('A=b=c'), { instanceOf: CtnetError })?.code, 4);
  // As the reference: an empty pair is malformed (";;;", a trailing ";").
  for (const text of [';;;', 'IP=10.0.0.5;', 'IgnoreUnknown=1;;K8S_POD_NAME=x']) {
    t.is(t.throws(() => parseCniArgs(text), { instanceOf: CtnetError })?.code, 4, text);
  }
});

test('a CNI_ARGS key set twice to different values is refused, never resolved silently', (t) => {
  const e = t.throws(() => parseCniArgs('IP=10.0.0.5;IP=10.0.0.6'), { instanceOf: CtnetError });
  t.is(e?.code, 4);
  t.regex(e?.message ?? '', /"IP" is set twice/);
});

test('unknown CNI_ARGS keys fail unless IgnoreUnknown is set', (t) => {
  t.is(t.throws(() => pickCniArgs('K8S_POD_NAME=x;IP=10.0.0.5', ['IP']), { instanceOf: CtnetError })?.code, 4);
  t.deepEqual([...pickCniArgs('IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.5', ['IP'])], [['IP', '10.0.0.5']]);
});
