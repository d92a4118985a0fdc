/**
 * `ctnet run -t`: the container's own pty (devpts newinstance, /dev/pts/0), driven through a real
 * terminal (tmux) from the CLI and through the agent: typing into the container's shell, /dev/tty
 * and /dev/console, the window size following `tmux resize-window`, Ctrl-C interrupting a `sleep`
 * while the shell survives, the caller's modes restored. Also `-t` without a terminal and `-dt`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { busyboxRootfs, ctnet, ensureInitHelper, type RunnerEnv, runnerEnv, startRunnerAgent } from './runner-helpers.js';
import { createSandbox, netnsPath, repoRoot } from './sandbox.js';

test.before(ensureInitHelper);

const front = join(repoRoot, 'bin', 'ctnet');
const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** Polls until `check` holds (bounded by tries, not asserted on time); returns the last value. */
async function until<T>(get: () => Promise<T> | T, check: (v: T) => boolean, tries = 300): Promise<T> {
  let v = await get();
  for (let i = 0; i < tries && !check(v); i++) {
    await sleep(100);
    v = await get();
  }
  return v;
}

/** Drives `-it` in a tmux session; `env` picks the path (CTNET_AGENT=0: the CLI). */
async function interactiveShell(t: ExecutionContext, renv: RunnerEnv, image: string, env: NodeJS.ProcessEnv, tag: string) {
  const session = `ctt-tty-${tag}-${process.pid}`;
  const name = `shell-${tag}`;
  const envArgs = Object.entries(env)
    .filter(([k]) => k.startsWith('CTNET_') || k === 'NETCONFPATH' || k === 'PATH' || k === 'CNI_PATH')
    .map(([k, v]) => `${k}=${v}`);
  // The outer shell records its terminal modes before and compares them after the run.
  const outer = `a=$(stty -g); ${front} run --rm -it --name ${name} --network none ${image} sh; echo exit-code-$?; [ "$a" = "$(stty -g)" ] && echo modes-restored; sleep 600`;
  tmux(
    'new-session',
    '-d',
    '-s',
    session,
    '-x',
    '100',
    '-y',
    '30',
    'env',
    ...envArgs,
    'nsenter',
    `--net=${netnsPath(renv.host)}`,
    'sh',
    '-c',
    outer,
  );
  t.teardown(() => {
    spawnSync('tmux', ['kill-session', '-t', session], { stdio: 'ignore' });
  });
  const screen = () => tmux('capture-pane', '-p', '-t', session);
  const waitFor = async (re: RegExp) => {
    const s = await until(screen, (v) => re.test(v));
    t.regex(s, re);
    return s;
  };
  const type = async (line: string) => {
    tmux('send-keys', '-t', session, '-l', line);
    tmux('send-keys', '-t', session, 'Enter');
  };
  const paneSize = () => tmux('display', '-p', '-t', session, '#{pane_height} #{pane_width}').trim();

  await waitFor(/^\/ #\s*$/m);
  await type("tty; echo dev''tty-ok > /dev/tty; echo con''sole-ok > /dev/console");
  await waitFor(/^\/dev\/pts\/0\s*\ndevtty-ok\s*\nconsole-ok/m);
  await type('grep devpts /proc/mounts; stat -c "%a %g" /dev/pts/0');
  const mounts = await waitFor(/^620 5\s*$/m);
  t.regex(mounts, /devpts \/dev\/pts devpts \S*gid=5,mode=620,ptmxmode=666/);

  await type('echo size-$(stty size | tr " " x)');
  await waitFor(new RegExp(`^size-${paneSize().replace(' ', 'x')}\\s*$`, 'm'));
  tmux('resize-window', '-t', session, '-x', '72', '-y', '17');
  const resized = await until(paneSize, (v) => v !== '30 100' && v !== '29 100');
  // tmux resizes the pane's terminal after the command returns: ask again until the new size is there.
  const want = new RegExp(`^resized-${resized.replace(' ', 'x')}\\s*$`, 'm');
  for (let i = 0; i < 50 && !want.test(screen()); i++) {
    await type('clear; echo resized-$(stty size | tr " " x)');
    await sleep(200);
  }
  await waitFor(want);

  // Ctrl-C reaches the container's foreground process (the sleep), not the shell.
  await type('sleep 1000; echo after-sleep');
  const running = await until(
    async () => (await ctnet(renv, ['exec', name, 'ps'], { env, allowFailure: true })).stdout,
    (v) => /sleep 1000/.test(v),
  );
  t.regex(running, /sleep 1000/);
  tmux('send-keys', '-t', session, 'C-c');
  const gone = await until(
    async () => (await ctnet(renv, ['exec', name, 'ps'], { env, allowFailure: true })).stdout,
    (v) => !/sleep 1000/.test(v),
  );
  t.notRegex(gone, /sleep 1000/, 'the sleep was interrupted');
  t.regex(gone, /\bsh\b/, 'the shell is still there');
  await type('echo alive-$((40+2))');
  await waitFor(/^alive-42\s*$/m);

  await type('exit 3');
  await waitFor(/^exit-code-3\s*\nmodes-restored/m);
}

test('-it from the CLI and through the agent: a pty of its own, resize, Ctrl-C, /dev/console', async (t) => {
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  await interactiveShell(t, renv, image, { ...renv.env, CTNET_AGENT: '0' }, 'cli');
  const agent = await startRunnerAgent(t, renv);
  await interactiveShell(t, renv, image, renv.env, 'agent');
  t.notRegex(agent.stderrText(), /run declined/, 'the agent served it');
});

test('-t without a terminal, and -dt: the container keeps its pty and runs on', async (t) => {
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  const piped = await ctnet(
    renv,
    ['run', '--rm', '-t', '--network', 'none', image, 'sh', '-c', 'tty; test -t 0 && echo stdin-too'],
    {
      bundle: true,
    },
  );
  t.is(piped.stdout, '/dev/pts/0\r\nstdin-too\r\n', "a pty without a terminal at the caller (output in the pty's CRLF)");

  await ctnet(renv, ['run', '-dt', '--name', 'bg', '--network', 'none', image, 'sh', '-c', 'tty; exec sleep 600']);
  const logs = await until(
    async () => (await ctnet(renv, ['logs', 'bg'])).stdout,
    (v) => v.includes('/dev/pts/0'),
  );
  t.regex(logs, /\/dev\/pts\/0/);
  const ps = await ctnet(renv, ['exec', 'bg', 'ps']);
  t.regex(ps.stdout, /sleep 600/, 'detached, it runs on');
  await ctnet(renv, ['rm', '-f', 'bg']);
});
