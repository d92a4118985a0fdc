import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  allowedDevices,
  helperDeviceRule,
  parsePreserveFds,
  parseSecurityOpts,
  seccompFilterText,
  v1DeviceRule,
} from './isolation.js';

test('--security-opt: seccomp=unconfined, seccomp=FILE (relative to the caller), no-new-privileges; others refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctnet-secopt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'p.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_LOG' }));
  writeFileSync(join(dir, 'bad.json'), '{nope');
  t.deepEqual(parseSecurityOpts([], dir).seccomp, { kind: 'default' });
  t.deepEqual(parseSecurityOpts(['seccomp=unconfined'], dir).seccomp, { kind: 'unconfined' });
  t.deepEqual(parseSecurityOpts(['seccomp=p.json'], dir).seccomp, { kind: 'custom', profile: { defaultAction: 'SCMP_ACT_LOG' } });
  t.deepEqual(parseSecurityOpts(['no-new-privileges', 'no-new-privileges=true'], dir).seccomp, { kind: 'default' });
  t.throws(() => parseSecurityOpts(['seccomp=missing.json'], dir), {
    message: /opening seccomp profile \(missing.json\) failed/,
  });
  t.throws(() => parseSecurityOpts(['seccomp=bad.json'], dir), { message: /bad.json is not JSON/ });
  t.throws(() => parseSecurityOpts(['apparmor=unconfined'], dir), { message: /invalid --security-opt "apparmor=unconfined"/ });
  t.throws(() => parseSecurityOpts(['no-new-privileges=false'], dir));
});

test('the compiled filter: none when unconfined, the default profile otherwise', (t) => {
  t.is(seccompFilterText({ kind: 'unconfined' }), undefined);
  t.regex(seccompFilterText() ?? '', /^default errno 1\n/);
  t.regex(seccompFilterText({ kind: 'custom', profile: { defaultAction: 'SCMP_ACT_LOG' } }) ?? '', /^default log 0\n/);
});

test('the devices allow-list in both cgroup forms; --preserve-fds counts', (t) => {
  const pts = allowedDevices.find((d) => d.major === 136);
  t.truthy(pts);
  t.is(v1DeviceRule(pts as never), 'c 136:* rwm');
  t.is(helperDeviceRule(pts as never), 'c:136:*:rwm');
  t.false(
    allowedDevices.some((d) => d.major === undefined),
    'no wildcard major: mknod of any other device is refused',
  );
  t.is(parsePreserveFds('2'), 2);
  t.throws(() => parsePreserveFds('-1'));
  t.throws(() => parsePreserveFds('x'));
});
