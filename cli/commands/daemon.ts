/**
 * `ctnet daemon`: the resident runner (runner/daemon/server.ts). bin/ctnet hands `run` to it when
 * one serves the caller's network namespace and state root; the command is parsed here with the
 * CLI's own `run` definition, so both paths accept and mean exactly the same.
 */
import { constants } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Command } from 'commander';
import { CtnetError, ErrorCode, log } from '../../core/index.js';
import type { RunCall, RunnerContext } from '../../runner/index.js';
import { errorReport } from '../output.js';
import { defineRun, type RunFlags, runCommand } from './container.js';
import { idleExitMs, listenFailure } from './resident.js';

/** Set by the build (scripts/build.mjs) to the socket name compiled into bin/ctnet. */
declare const __CTNET_RUN_SOCKET__: string | undefined;

export function runSocketBase(): string {
  if (typeof __CTNET_RUN_SOCKET__ !== 'string') {
    throw new CtnetError(ErrorCode.internal, 'failed to start the ctnet daemon: this ctnet was not built with `npm run build`');
  }
  return __CTNET_RUN_SOCKET__;
}

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** performance.now() of a moment given as CLOCK_MONOTONIC ms (the front's start). */
function perfTimeOf(monotonicMs: number): number {
  return performance.now() - (Number(process.hrtime.bigint() / 1_000_000n) - monotonicMs);
}

type Runner = typeof import('../../runner/index.js');

async function serveRun(r: Runner, base: RunnerContext, call: RunCall): Promise<number | 'decline'> {
  const { request } = call;
  // Parse errors and help are declined: the CLI then prints them exactly as it always does.
  const program = new Command('ctnet').exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  program.enablePositionalOptions();
  let parsed: { image: string; command: string[]; f: RunFlags } | undefined;
  defineRun(program, async (image, command, f) => {
    parsed = { image, command, f };
  });
  try {
    await program.parseAsync(request.args, { from: 'user' });
  } catch {
    return 'decline';
  }
  // A container that reads the caller's terminal stays with the CLI (no stdin or terminal is passed here).
  if (!parsed || parsed.f.interactive || parsed.f.tty) return 'decline';
  const { image, command, f } = parsed;
  const ctx: RunnerContext = {
    ...base,
    env: request.env,
    stdio: f.detach ? undefined : call.output(),
    ownSession: true,
    signals: (forward) =>
      call.onSignal((n) => {
        const name = signalNames.get(n);
        if (name) forward(name);
      }),
  };
  return r.withTimings(request.env.CTNET_TIMING, perfTimeOf(request.startedMs), async () => {
    try {
      return await runCommand(image, command, f, { r, ctx, cwd: request.cwd, stdinIsTTY: false, write: call.write });
    } catch (err) {
      const { text, exitCode } = errorReport(err, request.env);
      call.write('err', text);
      return exitCode;
    }
  });
}

export function register(program: Command): void {
  program
    .command('daemon')
    .description(
      'serve `ctnet run` from one resident process for this network namespace and state root (bin/ctnet hands runs to it; without it they run on their own)',
    )
    .option('--idle-exit <seconds>', 'exit after this many seconds without a call (0: never)', '0')
    .action(async (opts: { idleExit: string }) => {
      const idle = idleExitMs(opts.idleExit);
      const r = await import('../../runner/index.js');
      const base = r.defaultContext();
      const socketName = r.daemonSocketName(runSocketBase(), base.paths.root);
      let daemon: Awaited<ReturnType<typeof r.startRunnerDaemon>>;
      try {
        daemon = await r.startRunnerDaemon({
          socketName,
          idleExitMs: idle,
          handler: (call) => serveRun(r, base, call),
        });
      } catch (err) {
        throw listenFailure(err, 'the ctnet daemon', 'this network namespace and state root');
      }
      // The plugins a default network runs, loaded now rather than by the first container.
      base.preload(['bridge', 'host-local', 'portmap', 'loopback']);
      log.info({ socket: `@${socketName}`, pid: process.pid }, 'ctnet daemon listening');
      process.stderr.write(`ctnet daemon: serving @${socketName} (pid ${process.pid})\n`);
      await new Promise<void>((resolve) => {
        // The first signal lets running containers' calls finish; a second one ends at once.
        const stop = () => {
          process.once('SIGTERM', () => process.exit(143));
          process.once('SIGINT', () => process.exit(130));
          void daemon.close().then(resolve);
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
        daemon.server.once('close', resolve);
      });
    });
}
