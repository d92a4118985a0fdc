/**
 * The commands on an existing container: stop, kill (and the signal names they take), rm, prune, ps, logs, exec and
 * a CNI CHECK of its network. Each runs the reconciliation first.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, CtnetErrorList, ErrorCode, wrapError } from '../core/index.js';
import type { RunnerContext } from './context.js';
import { withEnv } from './create.js';
import { execArgs, waitForExit } from './helper.js';
import { resolveImage, resolveUser } from './images.js';
import { networkFromText, portMappingsArg, runnerRuntime } from './network.js';
import { helperPath } from './paths.js';
import { seccompFiles } from './plan.js';
import { finalize, readExitFile, reconcile, release } from './release.js';
import {
  type ContainerRecord,
  containerDir,
  findRecord,
  isAlive,
  listRecords,
  loadRecord,
  removeRecord,
  sweepRemovals,
  withLock,
} from './state.js';

async function waitGone(pid: number | undefined, start: string | undefined, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid, start)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/**
 * Waits until the container's monitor (ctnet-init, the parent that reaps it) has written the exit code. It does so
 * right after the reap, but a loaded machine can run our finalize first, which would then record 255 for a container
 * that exited with its own code. Bounded: a monitor that died with it never writes.
 */
async function waitExitFile(ctx: RunnerContext, rec: ContainerRecord, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (readExitFile(ctx, rec) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

export async function stopContainer(ctx: RunnerContext, ref: string, timeoutSeconds = 10): Promise<ContainerRecord> {
  await reconcile(ctx);
  const rec = findRecord(ctx.paths, ref);
  const { pid, pidStart } = rec.state;
  if (rec.state.status === 'running' && isAlive(pid, pidStart)) {
    signal(pid as number, 'SIGTERM');
    if (!(await waitGone(pid, pidStart, timeoutSeconds * 1000))) {
      signal(pid as number, 'SIGKILL');
      await waitGone(pid, pidStart, 5000);
    }
    await waitExitFile(ctx, rec, 2000);
  }
  return (await finalize(ctx, rec.config.id)) ?? rec;
}

function signal(pid: number, sig: NodeJS.Signals | number): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    throw wrapError(`send signal ${sig} to process ${pid}`, err);
  }
}

export function parseSignal(text: string): NodeJS.Signals | number {
  if (/^\d+$/.test(text)) return Number(text);
  const name = (text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`) as NodeJS.Signals;
  const known = [
    'SIGKILL',
    'SIGTERM',
    'SIGINT',
    'SIGHUP',
    'SIGQUIT',
    'SIGUSR1',
    'SIGUSR2',
    'SIGSTOP',
    'SIGCONT',
    'SIGWINCH',
    'SIGALRM',
  ];
  if (!known.includes(name)) throw new CtnetError(ErrorCode.invalidConfig, `invalid signal: ${text}`);
  return name;
}

export async function killContainer(
  ctx: RunnerContext,
  ref: string,
  sig: NodeJS.Signals | number = 'SIGKILL',
): Promise<ContainerRecord> {
  await reconcile(ctx);
  const rec = findRecord(ctx.paths, ref);
  if (rec.state.status !== 'running' || !isAlive(rec.state.pid, rec.state.pidStart)) {
    throw new CtnetError(ErrorCode.invalidConfig, `container ${ref} is not running`);
  }
  signal(rec.state.pid as number, sig);
  if (sig === 'SIGKILL' || sig === 9) {
    await waitGone(rec.state.pid, rec.state.pidStart, 5000);
    await waitExitFile(ctx, rec, 2000);
    return (await finalize(ctx, rec.config.id)) ?? rec;
  }
  return rec;
}

export async function removeContainer(ctx: RunnerContext, ref: string, force: boolean): Promise<ContainerRecord> {
  await reconcile(ctx);
  const rec = findRecord(ctx.paths, ref);
  if (rec.state.status !== 'exited') {
    if (!force) {
      throw new CtnetError(ErrorCode.invalidConfig, `cannot remove container ${ref}: it is ${rec.state.status}`, {
        hint: `stop it first (ctnet stop ${ref}) or use rm -f`,
      });
    }
    if (isAlive(rec.state.pid, rec.state.pidStart)) signal(rec.state.pid as number, 'SIGKILL');
    await waitGone(rec.state.pid, rec.state.pidStart, 5000);
  }
  await withLock(ctx.paths, rec.config.id, async () => {
    const now = loadRecord(ctx.paths, rec.config.id);
    if (!now) return;
    const errors = await release(ctx, now);
    if (errors.length && !force) {
      throw new CtnetErrorList(`remove container ${ref}`, errors, {
        hint: 'retry, or use rm -f to forget the container anyway',
      });
    }
    removeRecord(ctx.paths, now);
    if (errors.length) {
      throw new CtnetErrorList(`release everything of removed container ${ref}`, errors);
    }
  });
  return rec;
}

export async function pruneContainers(ctx: RunnerContext): Promise<ContainerRecord[]> {
  await reconcile(ctx);
  sweepRemovals(ctx.paths);
  const removed: ContainerRecord[] = [];
  for (const rec of listRecords(ctx.paths)) {
    if (rec.state.status !== 'exited') continue;
    await removeContainer(ctx, rec.config.id, false);
    removed.push(rec);
  }
  return removed;
}

export async function listContainers(ctx: RunnerContext, all: boolean): Promise<ContainerRecord[]> {
  await reconcile(ctx);
  return listRecords(ctx.paths).filter((r) => all || r.state.status === 'running');
}

export function logFile(ctx: RunnerContext, rec: ContainerRecord): string {
  return join(containerDir(ctx.paths, rec.config.id), 'log');
}

/** Streams the log to `write`; with follow, until the container stops. */
export async function streamLogs(ctx: RunnerContext, ref: string, follow: boolean, write: (b: Buffer) => void): Promise<void> {
  const rec = findRecord(ctx.paths, ref);
  const file = logFile(ctx, rec);
  let offset = 0;
  const drain = () => {
    let size = 0;
    try {
      size = statSync(file).size;
    } catch {
      return;
    }
    if (size <= offset) return;
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(size - offset);
      const n = readSync(fd, buf, 0, buf.length, offset);
      offset += n;
      write(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
  };
  drain();
  if (!follow) return;
  for (;;) {
    const now = loadRecord(ctx.paths, rec.config.id);
    const running = now?.state.status === 'running' && isAlive(now.state.pid, now.state.pidStart);
    await new Promise((r) => setTimeout(r, 100));
    drain();
    if (!running) return;
  }
}

export function requireRunning(ctx: RunnerContext, ref: string): ContainerRecord {
  const rec = findRecord(ctx.paths, ref);
  if (rec.state.status !== 'running' || !isAlive(rec.state.pid, rec.state.pidStart)) {
    throw new CtnetError(ErrorCode.invalidConfig, `container ${ref} is not running`);
  }
  return rec;
}

/** `ctnet exec`: joins every namespace and the cgroup of the running container. */
export async function execInContainer(
  ctx: RunnerContext,
  ref: string,
  opts: { command: string[]; env: string[]; workdir?: string; user?: string; interactive: boolean },
): Promise<number> {
  await reconcile(ctx);
  const rec = requireRunning(ctx, ref);
  const image = resolveImage(ctx.paths, rec.config.imageId ?? rec.config.image);
  const env = withEnv(rec.config.env, opts.env, ctx.env);
  const args = execArgs({
    pid: rec.state.pid as number,
    cgroupProcs: rec.state.cgroup?.procsFiles ?? [],
    env,
    cwd: opts.workdir ?? rec.config.workdir,
    user: opts.user ? resolveUser(image.lowers, opts.user) : rec.config.user,
    ...seccompFiles(ctx, rec),
    command: opts.command,
  });
  const child = spawn(helperPath(), args, { stdio: [opts.interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'] });
  return waitForExit(child);
}

/** CNI CHECK of a running container's network (in list order, with the stored result). */
export async function checkContainer(ctx: RunnerContext, ref: string): Promise<string | undefined> {
  await reconcile(ctx);
  const rec = requireRunning(ctx, ref);
  const a = rec.state.attachment;
  if (!a) return undefined;
  await runnerRuntime(await ctx.executor(), ctx.paths).checkList(
    networkFromText(a.conflist, `state of ${rec.config.id}`),
    {
      containerId: rec.config.id,
      netns: rec.state.netnsPath ?? '',
      ifname: a.ifname,
      capabilityArgs: { portMappings: portMappingsArg(a.portMappings) },
    },
    a.result,
  );
  return a.network;
}
