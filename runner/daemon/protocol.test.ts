import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { defaultRoot } from '../../inspect/index.js';
import {
  decodeRequest,
  encodeRequest,
  encodeSignal,
  fnv1a64,
  ProtocolError,
  requestLength,
  socketName,
  takeSignals,
} from './protocol.js';
import { environmentMismatch } from './server.js';

const request = {
  startedMs: 2 ** 33 + 12345,
  cwd: '/work dir',
  args: ['run', '--rm', '-e', 'A=b c', 'default', 'sh', '-c', 'echo "ü"'],
  env: { CTNET_ROOT: '/var/lib/ctnet', EMPTY: '', WITH_EQ: 'a=b' },
};

test('a request survives encoding and decoding, large start times and odd characters included', (t) => {
  const bytes = encodeRequest(request);
  t.is(requestLength(bytes), bytes.length);
  t.deepEqual(decodeRequest(bytes), request);
});

test('a request is recognised only when whole; the frames after it are signals', (t) => {
  const bytes = Buffer.concat([encodeRequest(request), encodeSignal(15), encodeSignal(2).subarray(0, 5)]);
  const length = requestLength(bytes) as number;
  t.is(requestLength(bytes.subarray(0, length - 1)), undefined);
  t.is(requestLength(bytes.subarray(0, 10)), undefined);
  const { signals, rest } = takeSignals(bytes.subarray(length));
  t.deepEqual(signals, [15]);
  t.is(rest.length, 5);
});

test('what the front would never send is refused', (t) => {
  t.throws(() => requestLength(Buffer.from('CTNETCNI\x01\x00\x00\x00\x00\x00\x00\x00')), { instanceOf: ProtocolError });
  const wrongVersion = encodeRequest(request);
  wrongVersion.writeUInt32LE(2, 8);
  t.throws(() => requestLength(wrongVersion), { message: /version 2/ });
  const huge = encodeRequest(request);
  huge.writeUInt32LE(64 << 20, 12);
  t.throws(() => requestLength(huge), { message: /too large/ });
  t.throws(() => takeSignals(Buffer.from([9, 0, 0, 0, 1, 0, 0, 0])), { instanceOf: ProtocolError });
});

test('socket names hash the state root with FNV-1a 64 as the front does', (t) => {
  // Published FNV-1a 64 test vectors.
  t.is(fnv1a64(''), 'cbf29ce484222325');
  t.is(fnv1a64('a'), 'af63dc4c8601ec8c');
  t.is(fnv1a64('foobar'), '85944171f73967e8');
  t.is(socketName('ctnet-run-x', ''), 'ctnet-run-x-cbf29ce484222325');
  t.not(socketName('ctnet-run-x', '/a'), socketName('ctnet-run-x', '/b'));
});

test('a caller is served only with the same ctnet environment', (t) => {
  const own = { PATH: '/usr/bin', CTNET_ROOT: '/r', HOME: '/root', CTNET_TIMING: '/t' };
  t.is(environmentMismatch({ PATH: '/usr/bin', CTNET_ROOT: '/r', HOME: '/elsewhere' }, '/', own), undefined);
  t.is(environmentMismatch({ PATH: '/usr/bin', CTNET_ROOT: '/r', CTNET_DAEMON: '1' }, '/', own), undefined);
  t.regex(environmentMismatch({ PATH: '/usr/bin', CTNET_ROOT: '/r', CTNET_DEBUG: '1' }, '/', own) ?? '', /CTNET_DEBUG/);
  t.is(environmentMismatch({ PATH: '/bin', CTNET_ROOT: '/r' }, '/', own), undefined, "the daemon's own PATH finds its programs");
  t.regex(environmentMismatch({ CNI_PATH: '/opt/cni/bin', CTNET_ROOT: '/r' }, '/', own) ?? '', /CNI_PATH/);
  t.regex(environmentMismatch({ PATH: '/usr/bin' }, '/', own) ?? '', /CTNET_ROOT/);
  t.is(environmentMismatch({ CTNET_ROOT: '/var/lib/ctnet' }, '/', {}), undefined, 'the default root, named or not');
  t.regex(environmentMismatch({ CTNET_ROOT: 'rel' }, '/nowhere', { CTNET_ROOT: 'rel' }) ?? '', /relative/);
});

test("the front's default state root is ctnet's", (t) => {
  const source = readFileSync(join(import.meta.dirname, 'ctnet-front.c'), 'utf8');
  t.regex(source, new RegExp(`#define CTNET_DEFAULT_ROOT "${defaultRoot}"`));
});
