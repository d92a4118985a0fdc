import test from 'ava';
import { defaultCapabilities } from '../isolation.js';
import { compileSeccomp, defaultSeccompProfile, kernelAtLeast, type SeccompTarget } from './profile.js';

const amd64: SeccompTarget = { arch: 'amd64', scmpArch: 'SCMP_ARCH_X86_64', caps: defaultCapabilities, kernel: '6.18.44-fc' };

function rules(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('rule ') && l.split(' ')[3] === name);
}

test("Docker's default profile for amd64 with the default capabilities", (t) => {
  const text = compileSeccomp(defaultSeccompProfile, amd64);
  const lines = text.split('\n');
  t.is(lines[0], 'default errno 1');
  t.deepEqual(lines.slice(1, 4), ['arch x86_64', 'arch x86', 'arch x32']);
  t.deepEqual(rules(text, 'read'), ['rule allow 0 read 0']);
  t.deepEqual(rules(text, 'socket'), ['rule allow 0 socket 1 0 ne 40 0'], 'every family but AF_VSOCK');
  t.deepEqual(rules(text, 'personality'), [
    'rule allow 0 personality 1 0 eq 0 0',
    'rule allow 0 personality 1 0 eq 8 0',
    'rule allow 0 personality 1 0 eq 131072 0',
    'rule allow 0 personality 1 0 eq 131080 0',
    'rule allow 0 personality 1 0 eq 4294967295 0',
  ]);
  // Without CAP_SYS_ADMIN: clone without namespace flags only, clone3 answers ENOSYS, no unshare/mount.
  t.deepEqual(rules(text, 'clone'), ['rule allow 0 clone 1 0 masked_eq 2114060288 0']);
  t.deepEqual(rules(text, 'clone3'), ['rule errno 38 clone3 0']);
  for (const name of ['unshare', 'mount', 'setns', 'keyctl', 'init_module', 'bpf', 'reboot'])
    t.deepEqual(rules(text, name), [], name);
  // CAP_SYS_CHROOT is in the default set; the minKernel 4.8 rule holds here; arm-only calls are left out.
  t.deepEqual(rules(text, 'chroot'), ['rule allow 0 chroot 0']);
  t.deepEqual(rules(text, 'ptrace'), ['rule allow 0 ptrace 0']);
  t.deepEqual(rules(text, 'arch_prctl'), ['rule allow 0 arch_prctl 0']);
  t.deepEqual(rules(text, 'cacheflush'), []);
});

test('rules follow the capabilities, the kernel and the architecture', (t) => {
  const admin = compileSeccomp(defaultSeccompProfile, { ...amd64, caps: [...defaultCapabilities, 'CAP_SYS_ADMIN'] });
  t.deepEqual(rules(admin, 'unshare'), ['rule allow 0 unshare 0']);
  t.deepEqual(rules(admin, 'clone'), ['rule allow 0 clone 0']);
  t.deepEqual(rules(admin, 'clone3'), ['rule allow 0 clone3 0']);
  const old = compileSeccomp(defaultSeccompProfile, { ...amd64, kernel: '4.4.0' });
  t.deepEqual(rules(old, 'ptrace'), []);
  const arm = compileSeccomp(defaultSeccompProfile, { ...amd64, arch: 'arm64', scmpArch: 'SCMP_ARCH_AARCH64' });
  t.true(arm.includes('\narch aarch64\narch arm\n'));
  t.deepEqual(rules(arm, 'cacheflush'), ['rule allow 0 cacheflush 0']);
  t.deepEqual(rules(arm, 'arch_prctl'), []);
});

test('kernel versions compare numerically', (t) => {
  t.true(kernelAtLeast('6.18.44-fc-v1300', '4.8'));
  t.true(kernelAtLeast('4.8.0', '4.8'));
  t.false(kernelAtLeast('4.7.10', '4.8'));
  t.false(kernelAtLeast('4.10', '4.11'));
  t.true(kernelAtLeast('4.10', '4.9'));
});

test('a profile of its own: actions, errnos and conditions; bad profiles are refused with code 7', (t) => {
  const text = compileSeccomp(
    {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [
        { names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
        { name: 'kill', action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 0x5412, op: 'SCMP_CMP_EQ' }] },
      ],
    },
    amd64,
  );
  t.is(
    text,
    'default allow 0\narch x86_64\nrule errno 13 mkdir 0\nrule kill_process 0 kill 0\nrule errno 1 ioctl 1 1 eq 21522 0\n',
  );
  const bad = (p: unknown) => t.throws(() => compileSeccomp(p as never, amd64), { message: /invalid seccomp profile/ });
  bad({});
  bad({ defaultAction: 'SCMP_ACT_NOTIFY' });
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['x; rm'], action: 'SCMP_ACT_ALLOW' }] });
  bad({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 9, value: 1, op: 'SCMP_CMP_EQ' }] }],
  });
  bad({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: -1, op: 'SCMP_CMP_EQ' }] }],
  });
  bad({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'LIKE' }] }],
  });
  const e = t.throws(() => compileSeccomp({ defaultAction: 'SCMP_ACT_X' }, amd64)) as { code?: number };
  t.is(e.code, 7);
});
