import test from 'ava';
import { decodeRequest, decodeResponse, encodeRequest, encodeServed, ProtocolError, protocolVersion } from './protocol.js';

const request = {
  type: 'bridge',
  cwd: '/root',
  env: { CNI_COMMAND: 'ADD', CNI_NETNS: '/run/netns/x', EMPTY: '', WITH_EQ: 'a=b' },
  stdin: '{"cniVersion":"1.1.0","name":"n","type":"bridge","note":"é"}',
};

test('a request survives encoding and decoding, including empty values, "=" in values and UTF-8', (t) => {
  t.deepEqual(decodeRequest(encodeRequest(request)), request);
});

test('the first of duplicate environment names wins, as getenv does', (t) => {
  const raw = encodeRequest({ ...request, env: {} });
  // Rebuild with a hand-made environment block holding a duplicate.
  const block = Buffer.from('A=1\0A=2\0B=3\0');
  const head = raw.subarray(0, 12);
  const field = (b: Buffer) => {
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return [n, b];
  };
  const data = Buffer.concat([
    head,
    ...field(Buffer.from('bridge')),
    ...field(Buffer.from('/')),
    ...field(block),
    ...field(Buffer.from('')),
  ]);
  t.deepEqual(decodeRequest(data).env, { A: '1', B: '3' });
});

test('anything a shim would not send is refused', (t) => {
  const good = encodeRequest(request);
  t.throws(() => decodeRequest(Buffer.from('GET / HTTP/1.1\r\n\r\n')), { instanceOf: ProtocolError });
  t.throws(() => decodeRequest(good.subarray(0, good.length - 3)), { instanceOf: ProtocolError, message: /truncated/ });
  t.throws(() => decodeRequest(Buffer.concat([good, Buffer.from('x')])), { instanceOf: ProtocolError, message: /trailing/ });
  const future = Buffer.from(good);
  future.writeUInt32LE(protocolVersion + 1, 8);
  t.throws(() => decodeRequest(future), { instanceOf: ProtocolError, message: /version/ });
});

test('a served answer carries exit code, stdout and stderr; a declined one only its status', (t) => {
  t.deepEqual(decodeResponse(encodeServed(7, '{"code":7}\n', 'warn: ü\n')), {
    served: true,
    exitCode: 7,
    stdout: '{"code":7}\n',
    stderr: 'warn: ü\n',
  });
  const declined = Buffer.alloc(4);
  declined.writeUInt32LE(1);
  t.deepEqual(decodeResponse(declined), { served: false });
});
