import test from 'ava';
import { hostsFile, resolvConf } from './etc-files.js';
import { execArgs, runArgs } from './helper.js';

test('/etc/hosts names the container by its address', (t) => {
  t.regex(hostsFile('web', '10.90.0.2'), /^10\.90\.0\.2\tweb$/m);
  t.regex(hostsFile('web', undefined), /^127\.0\.1\.1\tweb$/m);
  t.regex(hostsFile('web', undefined), /^127\.0\.0\.1\tlocalhost$/m);
});

test('resolv.conf: CNI DNS wins; loopback resolvers are dropped; Docker fallback when none is left', (t) => {
  const host = 'search example.org\nnameserver 127.0.0.53\noptions edns0\n';
  t.is(resolvConf(host, { hostNetwork: true }), host);
  t.is(resolvConf(host, { hostNetwork: false }), 'search example.org\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  t.is(resolvConf('nameserver 10.0.0.53\n', { hostNetwork: false }), 'nameserver 10.0.0.53\n');
  t.is(
    resolvConf(host, { hostNetwork: false, dns: { nameservers: ['10.90.0.1'], search: ['svc'] } }),
    'search svc\nnameserver 10.90.0.1\n',
  );
});

test('helper arguments: every plan field, the command after --', (t) => {
  const args = runArgs(
    {
      netns: '/s/netns/x',
      cgroupProcs: ['/cg/pids/x/cgroup.procs'],
      rootfs: '/s/c/rootfs',
      overlays: [{ lower: '/img', upper: '/s/u', work: '/s/w', target: '/s/c/rootfs' }],
      binds: [
        { source: '/data', target: '/data', readOnly: true },
        { source: '/s/hosts', target: '/etc/hosts', readOnly: false },
      ],
      hostname: 'h',
      env: ['A=1'],
      cwd: '/w',
      user: '1000:1000',
      exitFile: '/s/exit',
      exitCommand: ['/usr/bin/node', 'ctnet'],
      command: ['sh', '-c', 'echo --'],
    },
    3,
  );
  t.deepEqual(args, [
    'run',
    '--status-fd',
    '3',
    '--rootfs',
    '/s/c/rootfs',
    '--netns',
    '/s/netns/x',
    '--cgroup-procs',
    '/cg/pids/x/cgroup.procs',
    '--overlay',
    '/img',
    '/s/u',
    '/s/w',
    '/s/c/rootfs',
    '--bind-ro',
    '/data',
    '/data',
    '--bind',
    '/s/hosts',
    '/etc/hosts',
    '--hostname',
    'h',
    '--env',
    'A=1',
    '--cwd',
    '/w',
    '--user',
    '1000:1000',
    '--exit-file',
    '/s/exit',
    '--exit-command',
    '/usr/bin/node',
    '--exit-command',
    'ctnet',
    '--',
    'sh',
    '-c',
    'echo --',
  ]);
  t.deepEqual(execArgs({ pid: 42, cgroupProcs: [], env: ['A=1'], command: ['ls'] }), [
    'exec',
    '--pid',
    '42',
    '--env',
    'A=1',
    '--',
    'ls',
  ]);
});
