/**
 * The runner's isolation beside Docker's defaults, probed from inside containers with one static
 * probe (test-net/security-probe.c) and busybox: descriptors of the caller, the devices allow-list
 * (cgroup v1 rules and the cgroup v2 BPF program), seccomp with Docker's profile, PID 1, masked
 * and read-only paths, and what a container must not reach on the host. Each check runs with and
 * without the agent.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import {
  busyboxRootfs,
  ctnet,
  ensureInitHelper,
  inspect,
  leftovers,
  nothingLeft,
  parentOf,
  type RunnerEnv,
  runnerEnv,
  startRunnerAgent,
} from './runner-helpers.js';
import { createSandbox, netnsPath, repoRoot, tempDir } from './sandbox.js';

const front = join(repoRoot, 'bin', 'ctnet');
const probeSource = join(repoRoot, 'test-net', 'security-probe.c');
let probeBinary = '';

test.before(() => {
  ensureInitHelper();
  const dir = execFileSync('mktemp', ['-d', '/tmp/ctt-probe-XXXXXX']).toString().trim();
  probeBinary = join(dir, 'security-probe');
  execFileSync('gcc', ['-O2', '-static', '-o', probeBinary, probeSource]);
});

type Mode = 'cli' | 'agent';

interface World {
  renv: RunnerEnv;
  image: string;
  agent?: { child: ChildProcess; socket: string };
}

async function setup(t: ExecutionContext, mode: Mode, env: NodeJS.ProcessEnv = {}): Promise<World> {
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  Object.assign(renv.env, env);
  const image = await busyboxRootfs(t);
  copyFileSync(probeBinary, join(image, 'bin', 'probe'));
  const world: World = { renv, image };
  if (mode === 'agent') world.agent = await startRunnerAgent(t, renv);
  return world;
}

/** Runs bin/ctnet in the sandbox host with extra descriptors of ours at the given numbers. */
function runFront(
  renv: RunnerEnv,
  args: string[],
  fds: Record<number, number> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const top = Math.max(2, ...Object.keys(fds).map(Number));
  const stdio: (number | 'ignore' | 'pipe')[] = ['ignore', 'pipe', 'pipe'];
  for (let i = 3; i <= top; i++) stdio.push(fds[i] ?? 'ignore');
  const child = spawn('nsenter', [`--net=${netnsPath(renv.host)}`, front, ...args], { env: renv.env, cwd: repoRoot, stdio });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

/**
 * Runs `script` in a container and returns its output. With the agent the run is detached and its
 * output goes to a volume, so the test can check that the agent (not the CLI) started it.
 */
async function probe(
  t: ExecutionContext,
  w: World,
  script: string,
  opts: { runArgs?: string[]; fds?: Record<number, number> } = {},
): Promise<string> {
  const runArgs = ['--network', 'none', ...(opts.runArgs ?? [])];
  if (!w.agent) {
    const r = await runFront(w.renv, ['run', '--rm', ...runArgs, w.image, 'sh', '-c', script], opts.fds);
    t.is(r.code, 0, r.stderr);
    return r.stdout;
  }
  const out = tempDir(t, 'probe-out');
  const name = `probe-${Math.random().toString(36).slice(2, 8)}`;
  const wrapped = `(${script}) > /out/result 2>&1; touch /out/done; sleep 60`;
  const r = await runFront(
    w.renv,
    ['run', '-d', '--name', name, '-v', `${out}:/out`, ...runArgs, w.image, 'sh', '-c', wrapped],
    opts.fds,
  );
  t.is(r.code, 0, r.stderr);
  for (let i = 0; i < 400 && !existsSync(join(out, 'done')); i++) await new Promise((res) => setTimeout(res, 25));
  const view = await inspect(w.renv, name);
  t.is(parentOf(parentOf(view.State.Pid)), w.agent.child.pid ?? -1, 'the agent started the container');
  await ctnet(w.renv, ['rm', '-f', name]);
  return readFileSync(join(out, 'result'), 'utf8');
}

/** Every container was removed with all it held. */
function assertNothingLeft(t: ExecutionContext, w: World): void {
  t.deepEqual(leftovers(w.renv), nothingLeft);
}

function values(out: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const m of out.matchAll(/^([\w:@./-]+)=(.*)$/gm)) map[m[1] as string] = m[2] as string;
  return map;
}

for (const mode of ['cli', 'agent'] as const) {
  test(`[${mode}] no descriptor of the caller reaches the container; --preserve-fds passes what it names`, async (t) => {
    const w = await setup(t, mode);
    const hostDir = tempDir(t, 'host-dir');
    writeFileSync(join(hostDir, 'host-secret'), 'secret\n');
    const dirFd = openSync(hostDir, 'r');
    t.teardown(() => closeSync(dirFd));
    const script = [
      'echo fds=$(ls /proc/self/fd | tr "\\n" ,)',
      'cat /proc/self/fd/100/host-secret 2>/dev/null && echo leak=yes || echo leak=no',
      'echo init_fds=$(ls /proc/1/fd 2>/dev/null | tr "\\n" ,)',
      'readlink /proc/1/fd/0 >/dev/null 2>&1 && echo init_fd_link=readable || echo init_fd_link=denied',
    ].join('; ');
    const v = values(await probe(t, w, script, { fds: { 100: dirFd } }));
    // ls itself holds fd 3 (the directory it lists): 0, 1, 2 and that one, nothing else.
    t.is(v.fds, '0,1,2,3,');
    t.is(v.leak, 'no');
    // PID 1 keeps its stdio only, and where they lead is not the container's to read.
    t.is(v.init_fds, '0,1,2,');
    t.is(v.init_fd_link, 'denied');
    if (mode === 'cli') {
      // Podman's --preserve-fds: fd 3 is handed over and readable; fd 100 still is not.
      const file = join(hostDir, 'kept');
      writeFileSync(file, 'kept-content\n');
      const fileFd = openSync(file, 'r');
      t.teardown(() => closeSync(fileFd));
      const out = await probe(t, w, 'cat <&3; ls /proc/self/fd | tr "\\n" ,', {
        runArgs: ['--preserve-fds', '1'],
        fds: { 3: fileFd, 100: dirFd },
      });
      t.regex(out, /^kept-content$/m);
      t.regex(out, /^0,1,2,3,4,$/m);
    }
    assertNothingLeft(t, w);
  });

  test(`[${mode}] seccomp: Docker's profile by default (Seccomp 2, keyctl, unshare -U and clone flags refused), unconfined and a profile file as in Docker`, async (t) => {
    const w = await setup(t, mode);
    const checks = 'keyctl unshare-user clone-newuser clone3 personality-ok personality-bad vsock ptrace-me';
    const script = `grep "^Seccomp:" /proc/self/status; probe ${checks}; unshare -U true 2>/dev/null; echo unshare_cmd=$?`;
    const confined = await probe(t, w, script);
    t.regex(confined, /^Seccomp:\s+2$/m);
    t.like(values(confined), {
      keyctl: 'EPERM',
      'unshare-user': 'EPERM',
      'clone-newuser': 'EPERM',
      clone3: 'ENOSYS',
      'personality-ok': 'ok',
      'personality-bad': 'EPERM',
      vsock: 'EPERM',
      'ptrace-me': 'ok',
      unshare_cmd: '1',
    });
    const open = await probe(t, w, script, { runArgs: ['--security-opt', 'seccomp=unconfined'] });
    t.regex(open, /^Seccomp:\s+0$/m);
    t.like(values(open), { keyctl: 'ok', 'unshare-user': 'ok', 'personality-bad': 'ok', unshare_cmd: '0' });
    t.not(values(open).clone3, 'ENOSYS');
    // A profile of one's own (Docker's JSON format), read by the caller.
    const profile = join(tempDir(t, 'profile'), 'p.json');
    writeFileSync(
      profile,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
      }),
    );
    const own = await probe(t, w, 'mkdir /tmp/x 2>&1; probe keyctl', { runArgs: ['--security-opt', `seccomp=${profile}`] });
    t.regex(own, /Permission denied/);
    t.like(values(own), { keyctl: 'ok' });
    // libseccomp's program is made once per distinct filter and kept under the state root.
    t.is(readdirSync(join(w.renv.root, 'seccomp')).filter((f) => f.endsWith('.bpf')).length, 2);
    assertNothingLeft(t, w);
  });

  test(`[${mode}] PID 1 has the workload's capabilities, no_new_privs, and shows no host path`, async (t) => {
    const w = await setup(t, mode);
    const script = [
      'for f in CapPrm CapEff CapBnd CapAmb NoNewPrivs; do echo "self_$f=$(grep "^$f:" /proc/self/status | cut -f2)"; echo "init_$f=$(grep "^$f:" /proc/1/status | cut -f2)"; done',
      'echo cmdline=$(tr "\\0" "|" < /proc/1/cmdline)',
      'cat /proc/1/environ >/dev/null 2>&1 && echo environ=readable || echo environ=denied',
      'readlink /proc/1/exe >/dev/null 2>&1 && echo exe=readable || echo exe=denied',
      'echo status_name=$(grep ^Name: /proc/1/status | cut -f2)',
    ].join('; ');
    const out = await probe(t, w, script);
    const v = values(out);
    for (const f of ['CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs']) t.is(v[`init_${f}`], v[`self_${f}`], f);
    t.is(v.init_CapBnd, '00000000a80425fb');
    t.is(v.cmdline, 'ctnet-init|');
    t.is(v.environ, 'denied');
    t.is(v.exe, 'denied');
    t.false(out.includes(w.renv.root) || out.includes(repoRoot), out);
    assertNothingLeft(t, w);
  });
}

test("exec joins with the container's seccomp filter and devices cgroup, and without the caller's descriptors", async (t) => {
  const w = await setup(t, 'cli');
  const hostDir = tempDir(t, 'host-dir');
  const dirFd = openSync(hostDir, 'r');
  t.teardown(() => closeSync(dirFd));
  const started = await runFront(w.renv, [
    'run',
    '-d',
    '--name',
    'box',
    '--network',
    'none',
    '-v',
    '/dev/kmsg:/mnt/kmsg',
    w.image,
    'sleep',
    '60',
  ]);
  t.is(started.code, 0, started.stderr);
  const script = 'grep "^Seccomp:" /proc/self/status; echo fds=$(ls /proc/self/fd | tr "\\n" ,); probe keyctl open:/mnt/kmsg';
  const r = await runFront(w.renv, ['exec', 'box', 'sh', '-c', script], { 100: dirFd });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^Seccomp:\s+2$/m);
  t.like(values(r.stdout), { fds: '0,1,2,3,', keyctl: 'EPERM', 'open:/mnt/kmsg': 'EPERM' });
  await ctnet(w.renv, ['rm', '-f', 'box']);
  assertNothingLeft(t, w);
});

for (const [mode, driver] of [
  ['cli', 'v1'],
  ['agent', 'v1'],
  ['cli', 'v2'],
  ['agent', 'v2'],
] as const) {
  test(`[${mode}] devices (${driver === 'v1' ? 'cgroup v1 devices controller' : 'cgroup v2 BPF program'}): only Docker's allow-list opens, no mknod of others`, async (t) => {
    const w = await setup(t, mode, { CTNET_DEVICES_CGROUP: driver });
    const binds = ['kmsg', 'fuse', 'vcs', 'null', 'zero'].filter((d) => existsSync(`/dev/${d}`));
    const runArgs = binds.flatMap((d) => ['-v', `/dev/${d}:/mnt/${d}`]);
    const script = [
      `probe ${binds.map((d) => `open:/mnt/${d}`).join(' ')} open:/dev/null open:/dev/urandom open:/dev/ptmx`,
      'mkdir -p /tmp; probe mknod:/tmp/vcs:7:0 mknod:/tmp/null:1:3',
      'grep -E "^(0::|[0-9]+:devices:)" /proc/self/cgroup',
    ].join('; ');
    const out = await probe(t, w, script, { runArgs });
    const v = values(out);
    for (const d of binds) t.is(v[`open:/mnt/${d}`], ['null', 'zero'].includes(d) ? 'ok' : 'EPERM', d);
    t.true(binds.includes('kmsg') && binds.includes('fuse'), 'this host has /dev/kmsg and /dev/fuse to test with');
    t.like(v, {
      'open:/dev/null': 'ok',
      'open:/dev/urandom': 'ok',
      'open:/dev/ptmx': 'ok',
      'mknod:/tmp/vcs:7:0': 'EPERM',
      'mknod:/tmp/null:1:3': 'ok',
    });
    // Which mechanism held: the container sits in a v1 devices cgroup, or only in a cgroup2 one.
    const parent = w.renv.cgroupParent;
    if (driver === 'v1') t.regex(out, new RegExp(`^\\d+:devices:/${parent}/ctnet-`, 'm'));
    else {
      t.regex(out, new RegExp(`^0::/${parent}/ctnet-`, 'm'));
      t.regex(out, /^\d+:devices:\/$/m);
    }
    assertNothingLeft(t, w);
  });
}

test("what a container cannot do to the host (Docker defaults): modules, mounts, host sysctls, host processes and mounts, the agent's socket; /proc/sys, /sys, /proc/kcore and Podman's masked paths", async (t) => {
  const w = await setup(t, 'agent');
  const socket = w.agent?.socket as string;
  const swappiness = readFileSync('/proc/sys/vm/swappiness', 'utf8');
  const script = [
    `probe finit-module mount sethostname sysctl-host connect:@${socket}`,
    'echo procs=$(ls -d /proc/[0-9]* | wc -l)',
    'echo hostmounts=$(cut -d" " -f5 /proc/self/mountinfo | grep -cE "^/(work|tmp|run/netns)")',
    'touch /sys/probe 2>/dev/null && echo sys=rw || echo sys=ro',
    'echo sys_opts=$(grep " /sys " /proc/self/mountinfo | cut -d" " -f6)',
    'touch /proc/sys/kernel/probe 2>/dev/null; echo procsys_opts=$(grep " /proc/sys " /proc/self/mountinfo | cut -d" " -f6)',
    'echo kcore=$([ -e /proc/kcore ] && wc -c < /proc/kcore || echo absent)',
    'echo devblock=$(ls /sys/dev/block | wc -l)',
    'echo firmware=$(ls /sys/firmware | wc -l)',
    'echo interrupts=$(wc -c < /proc/interrupts)',
    'echo keys=$(wc -c < /proc/keys)',
  ].join('; ');
  // Served by the agent, and run by the CLI alone: the same answers.
  for (const mode of ['agent', 'cli'] as const) {
    const out = await probe(t, mode === 'agent' ? w : { ...w, agent: undefined }, script);
    const v = values(out);
    t.like(
      v,
      {
        'finit-module': 'EPERM',
        mount: 'EPERM',
        sethostname: 'EPERM',
        'sysctl-host': 'EROFS',
        [`connect:@${socket}`]: 'ECONNREFUSED',
        hostmounts: '0',
        sys: 'ro',
        devblock: '0',
        firmware: '0',
        interrupts: '0',
        keys: '0',
      },
      `${mode}: ${out}`,
    );
    t.true(['0', 'absent'].includes(v.kcore ?? ''), `${mode}: /proc/kcore masked (this kernel may not have it)`);
    // init, sh (and the agent mode's wrapping shell), the $( ) subshell, ls and wc.
    t.true(Number(v.procs) <= 6, `${mode}: only the container's processes: ${v.procs}`);
    t.regex(v.sys_opts ?? '', /^ro,/);
    t.regex(v.procsys_opts ?? '', /^ro,/);
  }
  t.is(readFileSync('/proc/sys/vm/swappiness', 'utf8'), swappiness, "the host's sysctl is unchanged");
  // The agent's socket is there on the host side (the probe reaches it from the sandbox host).
  const hostSide = execFileSync('nsenter', [`--net=${netnsPath(w.renv.host)}`, probeBinary, `connect:@${socket}`]).toString();
  t.regex(hostSide, /=ok$/m);
  assertNothingLeft(t, w);
});
