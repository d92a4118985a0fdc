/**
 * `ctnet agent` (also `ctnet cni-daemon` and `ctnet daemon`): the resident agent (agent/server.ts)
 * of this network namespace. bin/cni/<type> hand their CNI calls to it and bin/ctnet hands `run`;
 * the run is parsed here with the CLI's own `run` definition, so both paths accept and mean exactly
 * the same.
 */
import { constants } from 'node:os';
import { performance } from 'node:perf_hooks';
import { isatty } from 'node:tty';
import { Command } from 'commander';
import { type RunCall, startAgent } from '../../agent/index.js';
import { CtnetError, ErrorCode, log } from '../../core/index.js';
import { builtinPlugins, pluginNames } from '../../plugins/index.js';
import type { RunnerContext } from '../../runner/index.js';
import * as r from '../../runner/index.js';
import { errorReport } from '../output.js';
import { defineRun, type RunFlags, runCommand } from './container.js';

/** Set by the build (scripts/build.mjs) to the socket name compiled into bin/cni/<type> and bin/ctnet. */
declare const __CTNET_AGENT_SOCKET__: string | undefined;

/** The socket name this build's clients use; undefined when run from source (not built). */
export function builtAgentSocket(): string | undefined {
  return typeof __CTNET_AGENT_SOCKET__ === 'string' ? __CTNET_AGENT_SOCKET__ : undefined;
}

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** performance.now() of a moment given as CLOCK_MONOTONIC ms (the client's start). */
function perfTimeOf(monotonicMs: number): number {
  return performance.now() - (Number(process.hrtime.bigint() / 1_000_000n) - monotonicMs);
}

async function serveRun(base: RunnerContext, call: RunCall): Promise<number | 'decline'> {
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
  // --preserve-fds names descriptors that only the caller holds: the CLI runs that one.
  if (!parsed || parsed.f.preserveFds) return 'decline';
  const { image, command, f } = parsed;
  const ctx: RunnerContext = {
    ...base,
    env: request.env,
    stdio: f.detach ? undefined : call.stdio,
    ownSession: true,
    signals: (forward) =>
      call.onSignal((n) => {
        const name = signalNames.get(n);
        if (name) forward(name);
      }),
  };
  return r.withTimings(request.env.CTNET_TIMING, perfTimeOf(request.startedMs), async () => {
    try {
      return await runCommand(image, command, f, {
        r,
        ctx,
        cwd: request.cwd,
        stdinIsTTY: isatty(call.stdio.in),
        write: call.write,
      });
    } catch (err) {
      const { text, exitCode } = errorReport(err, request.env);
      call.write('err', text);
      return exitCode;
    }
  });
}

function seconds(flag: string, text: string): number {
  const s = Number(text);
  if (!Number.isFinite(s) || s < 0)
    throw new CtnetError(ErrorCode.invalidConfig, `invalid ${flag} "${text}": expected seconds ≥ 0`);
  return s * 1000;
}

export function register(program: Command): void {
  program
    .command('agent')
    .aliases(['cni-daemon', 'daemon'])
    .description(
      'serve the CNI plugin calls and `ctnet run` of this network namespace from one resident process (bin/cni/* and bin/ctnet hand their work to it; without it they do it themselves)',
    )
    .option('--idle-exit <seconds>', 'exit after this many seconds without a call (0: never)', '0')
    .option('--call-deadline <seconds>', 'fail a CNI call with error 11 after this long, undoing what it did', '60')
    .option('--watchdog <seconds>', 'leave service (exit) when the event loop is stuck this long (0: never)', '10')
    .option(
      '--run-deadline <seconds>',
      'fail a run whose container is not running this long after its record is made (image pulls excluded), undoing it (0: never)',
      '60',
    )
    .action(async (opts: { idleExit: string; callDeadline: string; watchdog: string; runDeadline: string }) => {
      const idleExitMs = seconds('--idle-exit', opts.idleExit);
      const callDeadlineMs = seconds('--call-deadline', opts.callDeadline);
      const runDeadlineMs = seconds('--run-deadline', opts.runDeadline);
      const watchdogMs = seconds('--watchdog', opts.watchdog);
      if (callDeadlineMs === 0)
        throw new CtnetError(ErrorCode.invalidConfig, 'invalid --call-deadline "0": expected seconds > 0');
      const socketName = builtAgentSocket();
      if (!socketName) {
        throw new CtnetError(
          ErrorCode.internal,
          'failed to start the ctnet agent: this ctnet was not built with `npm run build`',
        );
      }
      const base: RunnerContext = { ...r.defaultContext(), setupDeadlineMs: runDeadlineMs || undefined };
      let agent: Awaited<ReturnType<typeof startAgent>>;
      try {
        agent = await startAgent({
          socketName,
          registry: builtinPlugins,
          runHandler: (call) => serveRun(base, call),
          idleExitMs,
          callDeadlineMs,
          watchdogMs,
          stallContainerId: process.env.CTNET_AGENT_TEST_STALL || undefined,
        });
      } catch (err) {
        const inUse = (err as { code?: string }).code === 'EADDRINUSE';
        throw new CtnetError(
          inUse ? ErrorCode.exists : ErrorCode.io,
          inUse
            ? 'failed to start the ctnet agent: one already serves this network namespace'
            : `failed to start the ctnet agent: ${(err as Error).message}`,
        );
      }
      // The plugins a default network runs, loaded now rather than by the first call.
      base.preload(pluginNames);
      log.info({ socket: `@${socketName}`, pid: process.pid }, 'ctnet agent listening');
      process.stderr.write(`ctnet agent: serving @${socketName} (pid ${process.pid})\n`);
      // The first signal lets the calls in flight finish (runs: their containers' lives); a second one ends at once.
      const stop = () => {
        process.once('SIGTERM', () => process.exit(143));
        process.once('SIGINT', () => process.exit(130));
        void agent.close();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await agent.closed;
    });
}
