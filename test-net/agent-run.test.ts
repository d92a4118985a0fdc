/**
 * Runs through the agent (`ctnet agent`) and the front that hands `run` to it (bin/ctnet): both built
 * (npm run build), run for real in a sandbox host namespace with a state root of their own.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { run } from '../core/index.js';
import {
  assertAllReleased,
  busyboxRootfs,
  ctnet,
  ensureInitHelper,
  inspect,
  leftovers,
  nothingLeft,
  type RunnerEnv,
  runnerEnv,
  settledSnapshot,
  startRunnerAgent,
} from './runner-helpers.js';
import { connect, createSandbox, netnsPath, repoRoot, worldLink } from './sandbox.js';

const front = join(repoRoot, 'bin', 'ctnet');

test.before(() => {
  ensureInitHelper();
  // The front is a build product: the socket name it shares with the agent is chosen per build.
  if (readFileSync(front).subarray(0, 4).toString('latin1') !== '\x7fELF') {
    throw new Error(`${front} is not the built C front: run npm run build (with gcc installed)`);
  }
});

const request = 'GET /hello HTTP/1.0\r\n\r\n';

async function setup(t: ExecutionContext) {
  const sb = await createSandbox(t, { world: true });
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  mkdirSync(join(image, 'www'));
  writeFileSync(join(image, 'www', 'hello'), 'hello-from-ctr\n');
  return { renv, image, world: sb.world as string };
}

/** `ctnet agent` in the sandbox host (runner-helpers' startRunnerAgent), with its pid at hand. */
async function startAgent(t: ExecutionContext, renv: RunnerEnv, args: string[] = [], env: Record<string, string> = {}) {
  const agent = await startRunnerAgent(t, renv, args, env);
  return Object.assign(agent, { pid: agent.child.pid ?? -1 });
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** The process that started a running container: its init's monitor's parent. */
async function starterOf(renv: RunnerEnv, ref: string): Promise<number> {
  const view = await inspect(renv, ref);
  return parentOf(parentOf(view.State.Pid));
}

/** Starts the front without waiting; resolves once the container named `name` runs (is no longer being created). */
async function startFront(renv: RunnerEnv, args: string[], name: string) {
  const child = spawn('nsenter', [`--net=${netnsPath(renv.host)}`, front, ...args], {
    env: renv.env,
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : 0))));
  let running = false;
  for (let i = 0; i < 200 && !running; i++) {
    const ps = await ctnet(renv, ['ps', '--json']);
    const views = JSON.parse(ps.stdout) as { Name: string; State: { Status: string } }[];
    running = views.some((c) => c.Name === name && c.State.Status === 'running');
    if (!running) await new Promise((r) => setTimeout(r, 50));
  }
  if (!running) throw new Error(`container ${name} never ran; the front said: ${stderr || '(nothing)'}`);
  return { child, exited, stderr: () => stderr };
}

test('with an agent, run is served by it: a published port answers, output and exit codes reach the caller, rm leaves nothing', async (t) => {
  const { renv, image, world } = await setup(t);
  const agent = await startAgent(t, renv);
  const id = (
    await ctnet(renv, ['run', '-d', '--name', 'web', '-p', '18080:80', image, 'httpd', '-f', '-p', '80', '-h', '/www'], {
      bundle: true,
    })
  ).stdout.trim();
  t.regex(id, /^[0-9a-f]{64}$/);
  t.is(await starterOf(renv, 'web'), agent.pid, 'the agent started the container');
  t.regex(await connect(world, 'tcp', worldLink.hostAddr, 18080, request), /hello-from-ctr/, 'world → host address');
  t.regex(await connect(renv.host, 'tcp', '127.0.0.1', 18080, request), /hello-from-ctr/, 'host → 127.0.0.1');

  const fg = await ctnet(renv, ['run', '--rm', image, 'sh', '-c', 'echo out; echo err >&2; exit 3'], {
    bundle: true,
    allowFailure: true,
  });
  t.deepEqual([fg.code, fg.stdout, fg.stderr], [3, 'out\n', 'err\n'], "the container's own streams and exit code");

  // Failures read and exit exactly as from the CLI without the agent.
  const noAgent = { ...renv.env, CTNET_AGENT: '0' };
  for (const args of [
    ['run', '--rm', image, 'nosuchcmd'],
    ['run', '--rm', 'nosuchimage', 'true'],
    ['run', '-d', '--name', 'clash', '-p', '18080:80', image, 'true'],
    ['run', '--rm', '--bogus', image, 'true'],
  ]) {
    const served = await ctnet(renv, args, { bundle: true, allowFailure: true });
    const cli = await ctnet(renv, args, { bundle: true, allowFailure: true, env: noAgent });
    t.not(served.code, 0, args.join(' '));
    t.deepEqual([served.code, served.stdout, served.stderr], [cli.code, cli.stdout, cli.stderr], args.join(' '));
  }

  await ctnet(renv, ['rm', '-f', 'web'], { bundle: true });
  const after = await settledSnapshot(renv);
  t.deepEqual(after.links, ['ctnet0', 'lo', 'uplink0'], 'no veth left');
  t.deepEqual(after.rules, [], 'no per-container rule left');
  t.deepEqual(after.leases, [], 'no lease left');
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('signals sent to the caller reach the container; -i gets the caller’s stdin; a run the agent declines (another environment) runs in the CLI', async (t) => {
  const { renv, image } = await setup(t);
  const agent = await startAgent(t, renv);
  const sleeper = await startFront(renv, ['run', '--rm', '--name', 'sleeper', image, 'sleep', '30'], 'sleeper');
  t.is(await starterOf(renv, 'sleeper'), agent.pid);
  sleeper.child.kill('SIGTERM');
  t.is(await sleeper.exited, 143, 'sleep ended by the SIGTERM its caller received');

  // -i: the caller's stdin, handed over as a descriptor, is the container's.
  const typed = await run('nsenter', [`--net=${netnsPath(renv.host)}`, front, 'run', '--rm', '-i', image, 'cat'], {
    env: renv.env,
    input: 'typed\n',
  });
  t.is(typed.stdout, 'typed\n');
  t.notRegex(agent.stderrText(), /run declined/, 'the agent served it');

  // A caller whose ctnet environment differs is not served: the CLI starts its container and exits.
  await ctnet(renv, ['run', '-d', '--name', 'other', image, 'sleep', '30'], {
    bundle: true,
    env: { ...renv.env, CTNET_DEBUG: '1' },
  });
  t.not(await starterOf(renv, 'other'), agent.pid);
  await ctnet(renv, ['rm', '-f', 'other'], { bundle: true });
  await settledSnapshot(renv);
  t.deepEqual(leftovers(renv), nothingLeft);
});

test('the agent killed during a foreground run: the caller exits 125, and the next command releases the finished container', async (t) => {
  const { renv, image } = await setup(t);
  const agent = await startAgent(t, renv);
  const run = await startFront(renv, ['run', '--rm', '--name', 'orphan', '-p', '18090:80', image, 'sleep', '600'], 'orphan');
  agent.child.kill('SIGKILL');
  t.is(await run.exited, 125);
  t.regex(run.stderr(), /the ctnet agent closed the connection/);
  const view = await inspect(renv, 'orphan');
  t.true(view.State.Running, 'the container outlives the agent');
  // Its end, which no agent is waiting for any more.
  await ctnet(renv, ['kill', 'orphan'], { bundle: true });
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(view.State.Pid, 0);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is((await ctnet(renv, ['ps', '-a', '-q'], { bundle: true })).stdout, '', '--rm honoured by the next command');
  await assertAllReleased(t, renv);
});

test('-it through the agent: the container’s stdio is the caller’s terminal; a non-root caller is declined', async (t) => {
  const { renv, image } = await setup(t);
  const agent = await startAgent(t, renv);
  const net = `--net=${netnsPath(renv.host)}`;
  // script(1) gives the front a terminal of its own; the descriptors the agent gets are that terminal.
  const shell = `${front} run --rm -it ${image} sh -c 'test -t 0 && test -t 1 && echo on-a-tty'`;
  const tty = await run('nsenter', [net, 'script', '-qec', shell, '/dev/null'], { env: renv.env, allowFailure: true });
  t.is(tty.code, 0, tty.stdout + tty.stderr);
  t.regex(tty.stdout, /on-a-tty/);
  t.notRegex(agent.stderrText(), /run declined/, 'the agent served it');

  const nobody = await run(
    'nsenter',
    [net, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', front, 'run', '--rm', image, 'true'],
    { env: renv.env, allowFailure: true },
  );
  t.not(nobody.code, 0, 'the CLI, run as nobody, cannot run a container');
  for (let i = 0; i < 100 && !/caller uid 65534 is not root/.test(agent.stderrText()); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  t.regex(agent.stderrText(), /caller uid 65534 is not root/, 'the agent declined the non-root caller');
});

test('a run that waits on a stuck agent is declined by its watchdog and runs in the CLI', async (t) => {
  const { renv, image } = await setup(t);
  // The watchdog leaves the run's front ample time to reach the stuck agent first (connecting takes milliseconds;
  // a front that came after the agent left would find none and rightly run in the CLI without a decline).
  const agent = await startAgent(t, renv, ['--watchdog', '6'], { CTNET_AGENT_TEST_STALL: 'ctr-stall' });
  const net = `--net=${netnsPath(renv.host)}`;
  const stuck = run('nsenter', [net, join(repoRoot, 'bin', 'cni', 'bridge')], {
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'ctr-stall',
      CNI_NETNS: '/proc/self/ns/net',
      CNI_IFNAME: 'eth0',
    },
    input: '{"cniVersion":"1.0.0","name":"n","type":"bridge"}',
    allowFailure: true,
  });
  for (let i = 0; i < 100 && !/test hook: blocking the event loop/.test(agent.stderrText()); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const started = Date.now();
  const served = await run('nsenter', [net, front, 'run', '--rm', image, 'echo', 'ran-anyway'], {
    env: renv.env,
    allowFailure: true,
  });
  t.is(served.code, 0, served.stderr);
  t.is(served.stdout, 'ran-anyway\n');
  t.true(Date.now() - started < 30_000);
  t.regex(JSON.parse((await stuck).stdout).msg, /ctnet agent closed the connection/, 'the stuck CNI call: error 11');
  t.regex(
    agent.stderrText(),
    /the event loop is stuck: out of service, exiting .*"declined":1/,
    'the run was declined, not lost',
  );
  const { child } = agent;
  await new Promise((r) => (child.exitCode === null && child.signalCode === null ? child.once('exit', r) : r(null)));
  t.is(child.signalCode, 'SIGKILL', 'the watchdog ended the agent');
});

test('a run still setting up at the agent’s --run-deadline fails at once with 125, and what it set up is undone once its setup ends', async (t) => {
  const { renv, image } = await setup(t);
  await startAgent(t, renv, ['--run-deadline', '2']);
  // The default network's lease directory, locked as a concurrent ADD elsewhere would hold it: the run's bridge
  // ADD waits in host-local (whose own lock timeout is longer than the deadline).
  const leaseDir = join(renv.root, 'ipam', 'ctnet');
  mkdirSync(leaseDir, { recursive: true });
  const holder = spawn('flock', [join(leaseDir, 'lock'), 'sh', '-c', 'echo locked; exec cat'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const gone = new Promise((r) => holder.once('exit', r));
  t.teardown(async () => {
    holder.kill('SIGKILL');
    await gone;
  });
  await new Promise<void>((resolve) => holder.stdout?.once('data', () => resolve()));

  const late = await run(
    'nsenter',
    [`--net=${netnsPath(renv.host)}`, front, 'run', '-d', '--name', 'late', image, 'sleep', '600'],
    {
      env: renv.env,
      cwd: repoRoot,
      allowFailure: true,
    },
  );
  t.is(late.code, 125, late.stderr);
  t.regex(late.stderr, /not running after 2 s/);
  t.true(leftovers(renv).containers.length === 1, 'its setup is still under way');

  holder.stdin?.end();
  await gone;
  for (let i = 0; i < 600 && leftovers(renv).containers.length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  await assertAllReleased(t, renv);
});
