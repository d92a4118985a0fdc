/**
 * The container runner for real: the CLI runs inside a sandbox host namespace with its own state
 * root and cgroup parent; containers use a busybox root filesystem (or the built-in default
 * image). No test here needs the bridge plugin (see runner-bridge.test.ts).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { busyboxRootfs, ctnet, ensureInitHelper, inspect, leftovers, nothingLeft, runnerEnv } from './runner-helpers.js';
import { createSandbox, nsRun, repoRoot, tempDir } from './sandbox.js';

test.before(ensureInitHelper);

async function setup(t: ExecutionContext, world = false) {
  const sb = await createSandbox(t, { world });
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  return { sb, renv, image };
}

test('isolation: PID 1 is init, own hostname, only lo, no host mounts, Docker caps, no_new_privs, masked /proc', async (t) => {
  const { renv, image } = await setup(t);
  const script = [
    'echo pid1=$(cat /proc/1/comm)',
    'echo procs=$(ls -d /proc/[0-9]* | wc -l)',
    'echo host=$(hostname)',
    'echo links=$(ls /sys/class/net | tr "\\n" ,)',
    'grep -E "^(CapEff|CapBnd|NoNewPrivs)" /proc/self/status',
    'echo keys=$(wc -c < /proc/keys)',
    'echo mounts=$(cut -d" " -f2 /proc/mounts | tr "\\n" ,)',
    'touch /proc/sys/kernel/hostname 2>/dev/null && echo procsys=rw || echo procsys=ro',
    'ls /dev | tr "\\n" ,; echo',
    'exit 7',
  ].join('; ');
  const r = await ctnet(renv, ['run', '--rm', '--network', 'none', '--hostname', 'box', image, 'sh', '-c', script], {
    allowFailure: true,
  });
  t.is(r.code, 7, r.stderr);
  const out = r.stdout;
  t.regex(out, /^pid1=ctnet-init$/m);
  // init, sh, the $( ) subshell, ls and wc: nothing of the host's.
  t.true(Number(/^procs=(\d+)$/m.exec(out)?.[1]) <= 5, out);
  t.regex(out, /^host=box$/m);
  t.regex(out, /^links=lo,$/m);
  t.regex(out, /^CapEff:\s+00000000a80425fb$/m);
  t.regex(out, /^CapBnd:\s+00000000a80425fb$/m);
  t.regex(out, /^NoNewPrivs:\s+1$/m);
  t.regex(out, /^keys=0$/m);
  t.regex(out, /^procsys=ro$/m);
  t.regex(out, /null,.*pts,.*shm,.*urandom,zero,/);
  const mounts = /^mounts=(.*)$/m.exec(out)?.[1]?.split(',').filter(Boolean) ?? [];
  t.is(mounts[0], '/');
  t.false(
    mounts.some((m) => m.startsWith('/work') || m.startsWith('/tmp') || m.startsWith('/run/netns')),
    mounts.join(' '),
  );
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('the default image shows the host system read-only, with a private writable layer', async (t) => {
  const { renv } = await setup(t);
  const marker = `/usr/ctt-written-${process.pid}`;
  const r = await ctnet(renv, [
    'run',
    '--rm',
    '--network',
    'none',
    'default',
    'sh',
    '-c',
    `echo x > ${marker} && cat ${marker} && ls /bin/sh && cat /etc/os-release | head -1`,
  ]);
  t.regex(r.stdout, /^x$/m);
  t.regex(r.stdout, /\/bin\/sh/);
  t.false(existsSync(marker), 'the host /usr was not written');
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('host mode sees the sandbox host interfaces; none mode has only lo', async (t) => {
  const { renv, image } = await setup(t, true);
  const host = await ctnet(renv, ['run', '--rm', '--network', 'host', image, 'ls', '/sys/class/net']);
  t.regex(host.stdout, /uplink0/);
  const none = await ctnet(renv, ['run', '--rm', '--network', 'none', image, 'ip', '-o', 'addr']);
  t.deepEqual(
    none.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[1]),
    ['lo', 'lo'],
  );
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('detached lifecycle: ps, logs, exec joins namespaces and cgroup, stop runs the trap, rm leaves nothing', async (t) => {
  const { renv, image } = await setup(t);
  const id = (
    await ctnet(renv, [
      'run',
      '-d',
      '--name',
      'web',
      '--network',
      'none',
      '-e',
      'GREETING=hello',
      image,
      'sh',
      '-c',
      'echo $GREETING; trap "echo bye; exit 3" TERM; while true; do sleep 0.1; done',
    ])
  ).stdout.trim();
  t.regex(id, /^[0-9a-f]{64}$/);
  const ps = JSON.parse((await ctnet(renv, ['ps', '--json'])).stdout) as {
    Name: string;
    State: { Running: boolean; Pid: number };
  }[];
  t.is(ps.length, 1);
  t.is(ps[0]?.Name, 'web');
  t.true(ps[0]?.State.Running);
  // A second container may not take the name.
  const dup = await ctnet(renv, ['run', '-d', '--name', 'web', '--network', 'none', image, 'true'], { allowFailure: true });
  t.not(dup.code, 0);
  t.regex(dup.stderr, /name "web" is already in use/);
  const ex = await ctnet(renv, [
    'exec',
    'web',
    'sh',
    '-c',
    'echo $GREETING $$; hostname; cat /proc/self/cgroup; ls -d /proc/[0-9]* | wc -l',
  ]);
  t.regex(ex.stdout, /^hello \d+$/m);
  t.regex(ex.stdout, new RegExp(`^${id.slice(0, 12)}$`, 'm'));
  t.regex(ex.stdout, new RegExp(`pids:/${renv.cgroupParent}/ctnet-${id.slice(0, 12)}`));
  const execCode = await ctnet(renv, ['exec', 'web', 'sh', '-c', 'exit 5'], { allowFailure: true });
  t.is(execCode.code, 5);
  await ctnet(renv, ['stop', '-t', '5', 'web']);
  const logs = await ctnet(renv, ['logs', 'web']);
  t.is(logs.stdout, 'hello\nbye\n');
  const after = await inspect(renv, 'web');
  t.is(after.State.Status, 'exited');
  t.is(after.State.ExitCode, 3);
  t.deepEqual(leftovers(renv).netns, []);
  t.deepEqual(leftovers(renv).cgroups, []);
  await ctnet(renv, ['rm', 'web']);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('a detached container that exits is cleaned up by its monitor; start runs it again; --rm -d removes itself', async (t) => {
  const { renv, image } = await setup(t);
  await ctnet(renv, ['run', '-d', '--name', 'once', '--network', 'none', image, 'sh', '-c', 'echo run; sleep 1; exit 4']);
  // logs -f follows until the container stops.
  t.is((await ctnet(renv, ['logs', '-f', 'once'])).stdout, 'run\n');
  await ctnet(renv, ['run', '-d', '--rm', '--name', 'gone', '--network', 'none', image, 'true']);
  let view = await inspect(renv, 'once');
  for (
    let i = 0;
    i < 100 && (view.State.Status !== 'exited' || leftovers(renv).cgroups.length || existsSync(join(renv.root, 'names', 'gone')));
    i++
  ) {
    await new Promise((r) => setTimeout(r, 100));
    view = await inspect(renv, 'once');
  }
  t.is(view.State.ExitCode, 4);
  t.deepEqual(leftovers(renv).names, ['once']);
  t.deepEqual(leftovers(renv).cgroups, []);
  t.deepEqual(leftovers(renv).netns, []);
  await ctnet(renv, ['start', 'once']);
  for (let i = 0; i < 100 && (await inspect(renv, 'once')).State.Status !== 'exited'; i++)
    await new Promise((r) => setTimeout(r, 100));
  t.is((await ctnet(renv, ['logs', 'once'])).stdout, 'run\nrun\n');
  const pruned = await ctnet(renv, ['system', 'prune', '-f']);
  t.regex(pruned.stdout, /Deleted Containers: 1/);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('limits: a memory hog is OOM-killed (137, OOMKilled), a fork bomb stops at the pids limit, cpus sets the quota', async (t) => {
  const { renv, image } = await setup(t);
  const hog = await ctnet(
    renv,
    ['run', '--name', 'hog', '--network', 'none', '--memory', '16m', image, 'sh', '-c', 'x=a; while true; do x="$x$x"; done'],
    { allowFailure: true },
  );
  t.is(hog.code, 137);
  const view = await inspect(renv, 'hog');
  t.is(view.State.ExitCode, 137);
  t.true(view.State.OOMKilled);
  await ctnet(renv, ['run', '-d', '--name', 'bomb', '--network', 'none', '--pids-limit', '16', image, 'sleep', '60']);
  // busybox sh gives up at the first refused fork; the container's main process stays.
  await ctnet(renv, ['exec', 'bomb', 'sh', '-c', 'for i in $(seq 1 40); do sleep 30 >/dev/null 2>&1 & done'], {
    allowFailure: true,
  });
  const bombDir = `/sys/fs/cgroup/pids/${renv.cgroupParent}/ctnet-${(await inspect(renv, 'bomb')).Id.slice(0, 12)}`;
  let events = '';
  for (let i = 0; i < 50 && !/max [1-9]/.test(events); i++) {
    await new Promise((r) => setTimeout(r, 100));
    events = readFileSync(join(bombDir, 'pids.events'), 'utf8');
  }
  t.regex(events, /max [1-9]/, 'forks were refused at the limit');
  t.true(Number(readFileSync(join(bombDir, 'pids.current'), 'utf8')) <= 16);
  const cpu = await ctnet(renv, ['run', '-d', '--name', 'cpu', '--network', 'none', '--cpus', '0.5', image, 'sleep', '30']);
  t.truthy(cpu.stdout);
  const id = (await inspect(renv, 'cpu')).Id;
  t.is(readFileSync(`/sys/fs/cgroup/cpu/${renv.cgroupParent}/ctnet-${id.slice(0, 12)}/cpu.cfs_quota_us`, 'utf8').trim(), '50000');
  await ctnet(renv, ['rm', '-f', 'cpu', 'hog', 'bomb']);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('volumes, workdir, user, env and entrypoint', async (t) => {
  const { renv, image } = await setup(t);
  const data = tempDir(t, 'vol');
  chmodSync(data, 0o755);
  writeFileSync(join(data, 'in.txt'), 'from host\n');
  const r = await ctnet(renv, [
    'run',
    '--rm',
    '--network',
    'none',
    '-v',
    `${data}:/data:ro`,
    '-w',
    '/work/here',
    '-u',
    'app',
    '-e',
    'A=1',
    '--entrypoint',
    'sh',
    image,
    '-c',
    'cat /data/in.txt; pwd; id -u; id -g; echo A=$A; touch /data/x 2>/dev/null || echo ro',
  ]);
  t.is(r.stdout, 'from host\n/work/here\n1000\n1000\nA=1\nro\n');
  const caps = await ctnet(renv, [
    'run',
    '--rm',
    '--network',
    'none',
    '-u',
    '1000:1000',
    image,
    'grep',
    'CapEff',
    '/proc/self/status',
  ]);
  t.regex(caps.stdout, /CapEff:\s+0000000000000000/);
  t.deepEqual(readdirSync(data), ['in.txt']);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test("errors: one clear line, Docker's exit codes (125 ctnet, 126 cannot run, 127 not found), nothing half-made", async (t) => {
  const { renv, image } = await setup(t);
  const cases: [string[], number, RegExp][] = [
    [['run', '--rm', 'no-such-image', 'true'], 125, /no such image: no-such-image/],
    [['run', '--rm', '-p', '80:80:80:80', image, 'true'], 125, /invalid publish spec "80:80:80:80"/],
    [['run', '--rm', '--memory', '1m', image, 'true'], 125, /minimum allowed is 6MB/],
    [['run', '--rm', '--cpus', '99', image, 'true'], 125, /range of CPUs/],
    [['run', '--rm', '--network', 'container:nope', image, 'true'], 125, /no such container: nope/],
    [['run', '--rm', '--network', 'none', image, 'no-such-command'], 127, /failed to exec no-such-command/],
    [['run', '--rm', '--network', 'none', image, '/etc/passwd'], 126, /failed to exec \/etc\/passwd: Permission denied/],
    [['run', '--rm', '--bogus', image, 'true'], 125, /unknown option '--bogus'/],
    [['run', '--rm', '--network', 'no-such-net', image, 'true'], 125, /^ctnet: failed to find network "no-such-net" in \S+$/m],
    [['exec', 'nope', 'true'], 125, /no such container: nope/],
    [['rm', 'nope'], 1, /no such container: nope/],
  ];
  for (const [args, code, message] of cases) {
    const r = await ctnet(renv, args, { allowFailure: true });
    t.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, args.join(' '));
    t.is(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('hint:') && !l.startsWith('(run with --help')).length,
      1,
      r.stderr,
    );
    t.deepEqual(leftovers(renv), nothingLeft, args.join(' '));
  }
});

test("a stopped container's late cleanup (its old monitor's exit command) leaves the restarted run alone", async (t) => {
  const { renv, image } = await setup(t);
  const loop = 'trap "exit 0" TERM; while :; do sleep 0.1; done';
  await ctnet(renv, ['run', '-d', '--name', 'again', '--network', 'none', image, 'sh', '-c', loop]);
  const id = (await inspect(renv, 'again')).Id;
  await ctnet(renv, ['stop', '-t', '2', 'again']);
  await ctnet(renv, ['start', 'again']);
  const before = await inspect(renv, 'again');
  t.true(before.State.Running);
  // What the first run's monitor runs after its exit, arriving once the second run is up.
  await ctnet(renv, ['container', 'cleanup', id]);
  const after = await inspect(renv, 'again');
  t.true(after.State.Running, JSON.stringify(after.State));
  t.is(after.State.Pid, before.State.Pid);
  t.is((await ctnet(renv, ['kill', '-s', 'TERM', 'again'])).stdout, 'again\n');
  await ctnet(renv, ['rm', '-f', 'again']);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('exec exit codes; rm, stop, kill, start and inspect act on every name, report each failure and exit 1', async (t) => {
  const { renv, image } = await setup(t);
  for (const name of ['a', 'c']) {
    await ctnet(renv, [
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'none',
      image,
      'sh',
      '-c',
      'trap "exit 0" TERM; while :; do sleep 0.1; done',
    ]);
  }
  const execCodes = [];
  for (const cmd of [['sh', '-c', 'exit 4'], ['no-such-command'], ['/etc/passwd']]) {
    execCodes.push((await ctnet(renv, ['exec', 'a', ...cmd], { allowFailure: true })).code);
  }
  t.deepEqual(execCodes, [4, 127, 126]);

  const inspected = await ctnet(renv, ['inspect', 'a', 'b', 'c'], { allowFailure: true });
  t.is(inspected.code, 1);
  t.deepEqual(
    (JSON.parse(inspected.stdout) as { Name: string }[]).map((v) => v.Name),
    ['a', 'c'],
    'the found containers are printed',
  );
  t.regex(inspected.stderr, /^ctnet: no such container: b$/m);

  for (const verb of [['stop', '-t', '2'], ['start'], ['kill', '-s', 'TERM']]) {
    const r = await ctnet(renv, [...verb, 'a', 'b', 'c'], { allowFailure: true });
    t.is(r.code, 1, verb[0]);
    t.is(r.stdout, 'a\nc\n', `${verb[0]} acted on a and c: ${r.stderr}`);
    t.regex(r.stderr, /^ctnet: no such container: b$/m, verb[0]);
  }
  await new Promise((r) => setTimeout(r, 300));
  const rm = await ctnet(renv, ['rm', '-f', 'a', 'b', 'c'], { allowFailure: true });
  t.is(rm.code, 1);
  t.is(rm.stdout, 'a\nc\n', 'a missing name in the middle does not stop rm');
  t.is(rm.stderr.trim().split('\n').length, 1, rm.stderr);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('image import, ls, run, rm', async (t) => {
  const { renv, image } = await setup(t);
  const tar = join(tempDir(t, 'tar'), 'bb.tar');
  await nsRun(renv.host, 'tar', ['-cf', tar, '-C', image, '.']);
  t.is((await ctnet(renv, ['image', 'import', 'bb', tar])).stdout.trim(), 'bb');
  const ls = await ctnet(renv, ['image', 'ls', '--json']);
  t.deepEqual(
    (JSON.parse(ls.stdout) as { name: string }[]).map((i) => i.name),
    ['default', 'bb'],
  );
  const r = await ctnet(renv, ['run', '--name', 'user', '--network', 'none', 'bb', 'sh', '-c', 'echo in-bb > /f; cat /f']);
  t.is(r.stdout, 'in-bb\n');
  t.false(existsSync(join(renv.root, 'images', 'bb', 'rootfs', 'f')), 'the image itself was not written');
  const busy = await ctnet(renv, ['image', 'rm', 'bb'], { allowFailure: true });
  t.regex(busy.stderr, /used by container\(s\) user/);
  await ctnet(renv, ['rm', 'user']);
  await ctnet(renv, ['image', 'rm', 'bb']);
  t.false(existsSync(join(renv.root, 'images', 'bb')));
});

test('kill -9 of the CLI at any point of run, then ps: every container is either running or fully released', async (t) => {
  const { renv, image } = await setup(t);
  mkdirSync(join(renv.root, 'containers'), { recursive: true });
  const cli = ['--import', 'tsx', join(repoRoot, 'cli', 'main.ts')];
  for (const delayMs of [150, 300, 450, 600, 750, 900, 1200, 1600]) {
    const child = spawn(
      'nsenter',
      [`--net=/run/netns/${renv.host}`, process.execPath, ...cli, 'run', '--network', 'none', image, 'sleep', '60'],
      {
        env: renv.env,
        cwd: repoRoot,
        stdio: 'ignore',
      },
    );
    await new Promise((r) => setTimeout(r, delayMs));
    // nsenter execs node: the pid is the CLI's.
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  const ps = JSON.parse((await ctnet(renv, ['ps', '-a', '--json'])).stdout) as {
    Id: string;
    State: { Status: string; Pid: number };
  }[];
  for (const c of ps) {
    if (c.State.Status === 'running') {
      t.true(existsSync(`/proc/${c.State.Pid}`), `${c.Id} runs`);
      t.true(existsSync(join(renv.root, 'netns', c.Id)), `${c.Id} has its netns`);
    } else {
      t.is(c.State.Status, 'exited');
      t.false(existsSync(join(renv.root, 'netns', c.Id)), `${c.Id} released its netns`);
    }
  }
  const running = ps.filter((c) => c.State.Status === 'running');
  t.is(leftovers(renv).netns.length, running.length);
  // Every cgroup left is a running container's, one per controller it uses.
  const ownerOf = (dir: string) => running.find((c) => dir.endsWith(`/ctnet-${c.Id.slice(0, 12)}`));
  t.deepEqual(
    leftovers(renv).cgroups.filter((d) => !ownerOf(d)),
    [],
  );
  for (const c of running)
    t.true(
      leftovers(renv).cgroups.some((d) => ownerOf(d) === c),
      `${c.Id} has its cgroups`,
    );
  if (ps.length) await ctnet(renv, ['rm', '-f', ...ps.map((c) => c.Id)]);
  t.deepEqual(leftovers(renv), nothingLeft);
});
