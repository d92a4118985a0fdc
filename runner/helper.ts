/**
 * The narrow interface to the privileged helper (runner/helper/ctnet-init.c): argument lists
 * are built here from plain plans (pure, unit-tested), then the helper is spawned.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { CtnetError, ErrorCode } from '../core/index.js';
import { helperPath } from './paths.js';

export interface Overlay {
  lower: string;
  upper: string;
  work: string;
  target: string;
}

export interface RunPlan {
  /** Network namespace to join; undefined keeps the caller's (host networking). */
  netns?: string;
  /** Or: make a new namespace, bind-mounted on this path (lo up). */
  netnsCreate?: string;
  /** The monitor removes netnsCreate when the container ends (nothing else needs it). */
  netnsRemoveOnExit?: boolean;
  cgroupProcs: string[];
  rootfs: string;
  /** The first overlay is the root (target = rootfs); the others are mounted inside it. */
  overlays: Overlay[];
  binds: { source: string; target: string; readOnly: boolean }[];
  hostname?: string;
  env: string[];
  cwd?: string;
  /** Numeric "uid:gid". */
  user?: string;
  exitFile?: string;
  exitCommand?: string[];
  /** The compiled seccomp filter (runner/isolation.ts); undefined: unconfined. */
  seccomp?: string;
  /** Where the helper keeps the BPF program made from that filter (shared by equal filters). */
  seccompCache?: string;
  /** A cgroup v2 directory that gets the devices allow-list as a BPF program. */
  deviceCgroup?: string;
  deviceRules?: string[];
  /** The caller's fds 3 .. 3+N-1 stay open in the workload (--preserve-fds); all others are closed. */
  preserveFds?: number;
  /** `-t`: the container gets a pty of its own devpts; the monitor relays it to its stdio. */
  tty?: boolean;
  command: string[];
}

export interface ExecPlan {
  pid: number;
  cgroupProcs: string[];
  env: string[];
  cwd?: string;
  user?: string;
  seccomp?: string;
  seccompCache?: string;
  command: string[];
}

export function runArgs(plan: RunPlan, statusFd: number, waitFd?: number): string[] {
  const args = ['run', '--status-fd', String(statusFd), '--rootfs', plan.rootfs];
  if (plan.netns) args.push('--netns', plan.netns);
  if (plan.netnsCreate) args.push('--netns-create', plan.netnsCreate);
  if (plan.netnsRemoveOnExit) args.push('--netns-remove-on-exit');
  if (waitFd !== undefined) args.push('--wait-fd', String(waitFd));
  for (const f of plan.cgroupProcs) args.push('--cgroup-procs', f);
  for (const o of plan.overlays) args.push('--overlay', o.lower, o.upper, o.work, o.target);
  for (const b of plan.binds) args.push(b.readOnly ? '--bind-ro' : '--bind', b.source, b.target);
  if (plan.hostname) args.push('--hostname', plan.hostname);
  for (const e of plan.env) args.push('--env', e);
  if (plan.cwd) args.push('--cwd', plan.cwd);
  if (plan.user) args.push('--user', plan.user);
  if (plan.exitFile) args.push('--exit-file', plan.exitFile);
  for (const a of plan.exitCommand ?? []) args.push('--exit-command', a);
  pushIsolation(args, plan);
  if (plan.deviceCgroup) args.push('--device-cgroup', plan.deviceCgroup);
  for (const r of plan.deviceRules ?? []) args.push('--device-allow', r);
  if (plan.preserveFds) args.push('--preserve-fds', String(plan.preserveFds));
  if (plan.tty) args.push('--tty');
  args.push('--', ...plan.command);
  return args;
}

export function execArgs(plan: ExecPlan): string[] {
  const args = ['exec', '--pid', String(plan.pid)];
  for (const f of plan.cgroupProcs) args.push('--cgroup-procs', f);
  for (const e of plan.env) args.push('--env', e);
  if (plan.cwd) args.push('--cwd', plan.cwd);
  if (plan.user) args.push('--user', plan.user);
  pushIsolation(args, plan);
  args.push('--', ...plan.command);
  return args;
}

function pushIsolation(args: string[], plan: { seccomp?: string; seccompCache?: string }): void {
  if (plan.seccomp) args.push('--seccomp', plan.seccomp);
  if (plan.seccomp && plan.seccompCache) args.push('--seccomp-cache', plan.seccompCache);
}

/** `details` of a start error whose command could not be run (Docker exits 127 / 126 then). */
export const execNotFound = 'exec: not found';
export const execFailed = 'exec: failed';

export type StdioSlot = 'ignore' | 'inherit' | number;

export interface Started {
  /** Host pid of the container's init. */
  pid: number;
  monitor: ChildProcess;
}

/**
 * Starts monitor + init + workload and waits until the workload has been exec'd (or setup
 * failed: then the helper's message becomes the error, and nothing of the container runs).
 * With `whenReady`, init stops once its network namespace exists (it joins its cgroup meanwhile);
 * `whenReady` runs (CNI ADD), and only when it succeeds does the container go on (on failure init
 * gives up).
 */
export function startContainerProcess(
  plan: RunPlan,
  stdio: { stdin: StdioSlot; out: StdioSlot; err: StdioSlot },
  detached: boolean,
  whenReady?: () => Promise<void>,
): Promise<Started> {
  // The preserved fds keep their numbers; the helper's own pipes come after them.
  const kept = Array.from({ length: plan.preserveFds ?? 0 }, (_, i) => 3 + i);
  const statusFd = 3 + kept.length;
  const child = spawn(helperPath(), runArgs(plan, statusFd, whenReady ? statusFd + 1 : undefined), {
    stdio: [stdio.stdin, stdio.out, stdio.err, ...kept, 'pipe', ...(whenReady ? (['pipe'] as const) : [])],
    detached,
    env: process.env,
  });
  return new Promise((resolve, reject) => {
    let text = '';
    let readyError: unknown;
    let readyDone: Promise<void> = Promise.resolve();
    let readySeen = false;
    const status = child.stdio[statusFd] as NodeJS.ReadableStream | null;
    // A pipe to the helper is a socket pair: after writing, destroy our end, or its open read side
    // keeps this process alive for as long as the (detached) monitor runs.
    const go = child.stdio[statusFd + 1] as import('node:net').Socket | null | undefined;
    // init may die while the network is being attached (a failed cgroup join): its message on the
    // status pipe is the error to report, not the EPIPE of our "go".
    go?.on('error', () => {});
    child.once('error', (e) =>
      reject(new CtnetError(ErrorCode.io, `failed to start ${helperPath()}: ${e.message}`, { cause: e })),
    );
    if (!status) {
      reject(new CtnetError(ErrorCode.internal, 'failed to start the container: no status pipe'));
      return;
    }
    status.on('data', (b: Buffer) => {
      text += b.toString('utf8');
      if (whenReady && go && !readySeen && /^ready$/m.test(text)) {
        readySeen = true;
        readyDone = whenReady().then(
          () => {
            go.end('go\n', () => go.destroy());
          },
          (err: unknown) => {
            readyError = err;
            go.destroy();
          },
        );
      }
    });
    status.on('end', async () => {
      await readyDone;
      const pid = /^pid (\d+)$/m.exec(text);
      if (pid && readyError === undefined) {
        resolve({ pid: Number(pid[1]), monitor: child });
        return;
      }
      const err = /^error (.*)$/ms.exec(text)?.[1]?.trim();
      const message = err || 'the helper exited before the container started';
      const notFound = /failed to exec .*No such file/.test(message);
      const code = notFound ? ErrorCode.invalidConfig : ErrorCode.internal;
      const failure =
        readyError ??
        new CtnetError(code, `failed to start the container: ${message}`, {
          details: /failed to exec /.test(message) ? (notFound ? execNotFound : execFailed) : undefined,
        });
      if (child.exitCode !== null) reject(failure);
      else child.once('exit', () => reject(failure));
    });
  });
}

/** Resolves with the monitor's exit code (the container's: 128+n for a signal). */
export function waitForExit(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) {
      resolve(child.exitCode);
      return;
    }
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)));
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0;
}
