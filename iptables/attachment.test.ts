import test from 'ava';
import { attachmentComment, attachmentHash, parseAttachmentComment, validateKey } from './attachment.js';

const key = { network: 'net1', containerId: 'abc123', ifname: 'eth0' };

test('the attachment hash depends on all three parts and their boundaries', (t) => {
  t.not(attachmentHash(key), attachmentHash({ ...key, ifname: 'eth1' }));
  t.not(
    attachmentHash({ network: 'a', containerId: 'bc', ifname: 'x' }),
    attachmentHash({ network: 'ab', containerId: 'c', ifname: 'x' }),
  );
  t.regex(attachmentHash(key), /^[0-9a-f]{64}$/);
});

test('comments round-trip, including interface names with unusual bytes', (t) => {
  for (const ifname of ['eth0', 'net"1', 'ü-if', 'a%b']) {
    const k = { ...key, ifname };
    const comment = attachmentComment('masq', k);
    t.regex(comment, /^[A-Za-z0-9_.@+=% -]+$/);
    t.deepEqual(parseAttachmentComment(comment), { kind: 'masq', key: k });
  }
});

test('a comment too long for nft is cut and then no longer parses as an owner', (t) => {
  const k = { ...key, containerId: 'a'.repeat(120) };
  const comment = attachmentComment('masq', k);
  t.true(comment.length <= 127);
  t.not(parseAttachmentComment(comment)?.key.containerId, k.containerId);
});

test('validateKey rejects rule-text smuggling with code 7', (t) => {
  for (const bad of [
    { ...key, containerId: 'x -j ACCEPT' },
    { ...key, containerId: 'x\n-A INPUT' },
    { ...key, network: 'n"; flush ruleset' },
    { ...key, ifname: 'eth 0' },
    { ...key, ifname: '' },
    { ...key, ifname: 'a'.repeat(16) },
  ]) {
    const err = t.throws(() => validateKey(bad));
    t.is((err as { code?: number }).code, 7);
  }
  t.notThrows(() => validateKey(key));
});
