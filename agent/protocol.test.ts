import test from 'ava';
import {
  decodeReply,
  decodeRequest,
  encodeCniReply,
  encodeDeclined,
  encodeExit,
  encodeRequest,
  encodeSignal,
  FrameKind,
  ProtocolError,
  type RunRequest,
  takeFrames,
} from './protocol.js';

const cni = {
  api: 1,
  kind: 'cni',
  plugin: 'bridge',
  env: { CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' },
  config: '{"name":"n"}',
} as const;

test('a request goes through the wire unchanged, and the frames after it stay in the buffer', (t) => {
  const wire = Buffer.concat([encodeRequest(cni), encodeSignal(15)]);
  const { frames, rest } = takeFrames(wire.subarray(0, wire.length - 3));
  t.is(frames.length, 1);
  t.is(frames[0]?.kind, FrameKind.request);
  t.deepEqual(decodeRequest(frames[0]?.payload ?? Buffer.alloc(0)), cni);
  t.is(rest.length, 12 - 3, 'the incomplete SIGNAL frame waits for its bytes');
  const run: RunRequest = { api: 1, kind: 'run', args: ['run', '--rm', 'img'], cwd: '/', env: { A: '1' }, startedMs: 5 };
  t.deepEqual(decodeRequest(takeFrames(encodeRequest(run)).frames[0]?.payload ?? Buffer.alloc(0)), run);
});

test('the environment is execve’s: the first of duplicate names wins, entries without a name are ignored', (t) => {
  const payload = Buffer.from(JSON.stringify({ ...cni, env: ['A=1', 'A=2', '=x', 'noequals', 'B=a=b'] }));
  t.deepEqual(decodeRequest(payload).env, { A: '1', B: 'a=b' });
});

test('what no client of this API sends is refused', (t) => {
  for (const body of [
    'not json',
    '[]',
    '{"api":2,"kind":"cni"}',
    '{"api":1,"kind":"shell"}',
    '{"api":1,"kind":"cni","env":{}}',
  ]) {
    t.throws(() => decodeRequest(Buffer.from(body)), { instanceOf: ProtocolError }, body);
  }
  const huge = Buffer.alloc(8);
  huge.writeUInt32LE(0xffffffff, 0);
  t.throws(() => takeFrames(huge), { instanceOf: ProtocolError });
});

test('replies decode as the clients read them', (t) => {
  const read = (b: Buffer) => decodeReply(takeFrames(b).frames[0] ?? { kind: 0, payload: Buffer.alloc(0) });
  t.deepEqual(read(encodeDeclined('not root')), { kind: 'declined', reason: 'not root' });
  t.deepEqual(read(encodeCniReply(1, '{"code":7}\n', 'warn\n')), {
    kind: 'cni',
    exitCode: 1,
    stdout: '{"code":7}\n',
    stderr: 'warn\n',
  });
  t.deepEqual(read(encodeExit(137)), { kind: 'exit', code: 137 });
});
