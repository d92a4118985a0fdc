/**
 * Torture for the runner: the agent (`ctnet agent`, which serves `ctnet run`) killed with kill -9 at random points of `ctnet run` (-d, a published port,
 * the default bridge network), then the next commands (`ps -a`, and `rm -f` of what it lists): nothing may be left
 * (no container record or name, netns file, cgroup, mount, veth, lease, per-container rule or port reservation).
 * The delay is drawn over the time a whole `run -d` takes here; the seed is printed.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { assertAllReleased, busyboxRootfs, ctnet, ensureInitHelper, type RunnerEnv, runnerEnv } from './runner-helpers.js';
import { createSandbox, netnsPath, repoRoot } from './sandbox.js';
import { type Resident, seededRandom, startAgent } from './torture-helpers.js';

const front = join(repoRoot, 'bin', 'ctnet');
const trials = 10;

test.before(() => {
  ensureInitHelper();
});

/** `ctnet run -d …` through the front (served by the agent when one runs); resolves with its exit code. */
function runDetached(renv: RunnerEnv, args: string[]): Promise<{ code: number; stderr: string }> {
  const child = spawn('nsenter', [`--net=${netnsPath(renv.host)}`, front, 'run', '-d', ...args], {
    env: renv.env,
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code: code ?? (signal ? -1 : 0), stderr })));
}

async function removeAll(t: ExecutionContext, renv: RunnerEnv): Promise<string[]> {
  const ps = await ctnet(renv, ['ps', '-a', '--json'], { bundle: true });
  const views = JSON.parse(ps.stdout || '[]') as { Name: string; State: { Status: string } }[];
  const lines = views.map((v) => `${v.Name} ${v.State.Status}`);
  for (const { Name: name } of views) {
    const rm = await ctnet(renv, ['rm', '-f', name], { bundle: true, allowFailure: true });
    t.is(rm.code, 0, `rm -f ${name}: ${rm.stderr}`);
  }
  return lines;
}

test('kill -9 of the agent at random points of `ctnet run`: the next commands leave nothing behind', async (t) => {
  const random = seededRandom(t, 'kill -9 of the agent during ctnet run');
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  const image = await busyboxRootfs(t);
  let agent: Resident = await startAgent(t, sb.host, { env: renv.env });
  // A whole run -d through the agent, twice (the first one also sets up the default network): the range of delays.
  let runMs = 0;
  for (const name of ['cal1', 'cal2']) {
    const started = Date.now();
    const r = await runDetached(renv, ['--name', name, '-p', '18200:80', image, 'sleep', '600']);
    runMs = Date.now() - started;
    t.is(r.code, 0, r.stderr);
    await ctnet(renv, ['rm', '-f', name], { bundle: true });
  }
  t.log(`a whole run -d takes ${runMs} ms here: kills land in 0..${Math.floor(runMs * 1.2)} ms`);
  const outcomes: string[] = [];
  for (let i = 0; i < trials; i++) {
    // Up to a little past the end, so some kills find the container already running.
    const afterMs = Math.floor(random() * runMs * 1.2);
    const run = runDetached(renv, ['--name', `t${i}`, '-p', `${18210 + i}:80`, image, 'sleep', '600']);
    await new Promise((r) => setTimeout(r, afterMs));
    await agent.kill9();
    const { code } = await run;
    const listed = await removeAll(t, renv);
    outcomes.push(`+${afterMs}ms: run exited ${code}, ps -a then listed ${listed.length ? listed.join(', ') : 'nothing'}`);
    await assertAllReleased(t, renv);
    agent = await startAgent(t, sb.host, { env: renv.env });
  }
  t.log(`${trials} faults: ${outcomes.join('; ')}`);
});
