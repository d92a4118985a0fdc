/**
 * `ctnet run` in the agent: who is served, and what the command handler (cli/commands/agent.ts) gets
 * of the caller.
 *
 * The caller's stdin, stdout and stderr arrive as descriptors with the request (agent/acceptor.ts):
 * the same open files the CLI would have inherited, so pipes, files, sockets and terminals behave as
 * with the CLI. A terminal stays the caller's terminal: `isatty(stdio.in)`, its window size
 * (TIOCGWINSZ on `stdio.in` or `stdio.out`) and its modes are the caller's. The client forwards the
 * signals it receives as frames, SIGWINCH included: a handler that gives the container a terminal
 * of its own (a pty) copies the caller's window size on each SIGWINCH. The client saves its
 * terminal's modes before the request and restores them when the run ends, also when the agent dies,
 * so a handler may put the caller's terminal in raw mode.
 */
import { closeSync, writeSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { log } from '../core/index.js';
import { ctnetRoot } from '../network/index.js';
import type { Caller } from './acceptor.js';
import type { RunRequest } from './protocol.js';

/** One accepted run, as the command handler sees it. */
export interface RunCall {
  request: RunRequest;
  /** The caller's stdin, stdout and stderr (closed by the agent after the call). */
  stdio: { in: number; out: number; err: number };
  write(stream: 'out' | 'err', text: string): void;
  /** Calls `handler` with each signal the caller forwards (SIGWINCH included), until the returned function is called. */
  onSignal(handler: (signal: number) => void): () => void;
}

/** The command's exit code, or `decline` (only before it has done anything) to send the caller to the CLI. */
export type RunHandler = (call: RunCall) => Promise<number | 'decline'>;

/**
 * Environment names that choose ctnet's state and configuration: a caller must agree with the agent
 * on them. PATH is not one: like dockerd, the agent finds its programs (ip, nft) with its own, which a
 * service manager sets differently from a login shell.
 */
function meaningfulEnv(name: string): boolean {
  if (name === 'CTNET_TIMING' || name === 'CTNET_AGENT' || name === 'CTNET_DAEMON') return false;
  if (name === 'CTNET_LOG_FILE' || name === 'CTNET_LOG_LEVEL') return false;
  // NETCONFPATH: where `--network NAME` finds other runtimes' networks (network/paths.ts).
  return name.startsWith('CTNET_') || name === 'CNI_PATH' || name === 'NETCONFPATH';
}

/** Why a caller's environment is not the agent's, or undefined when they agree. */
export function environmentMismatch(caller: Record<string, string>, cwd: string, own: NodeJS.ProcessEnv): string | undefined {
  const names = new Set([...Object.keys(caller), ...Object.keys(own)].filter(meaningfulEnv));
  for (const name of [...names].sort()) {
    // The state root as ctnet resolves it: unset and the default path are one root.
    const same = name === 'CTNET_ROOT' ? ctnetRoot(caller) === ctnetRoot(own) : (caller[name] ?? '') === (own[name] ?? '');
    if (!same) return `${name} differs from the agent's`;
  }
  const root = own.CTNET_ROOT;
  if (root && !isAbsolute(root) && cwd !== process.cwd()) return 'CTNET_ROOT is relative and the working directories differ';
  return undefined;
}

/** Why a run is not served here (the client then runs the Node CLI), or undefined. */
export function runDeclineReason(caller: Caller, req: RunRequest, fds: number[]): string | undefined {
  if (caller.uid !== 0) return `caller uid ${caller.uid} is not root`;
  // Paths, process ids and cgroups in the command mean the same only to a caller that shares these.
  if (!caller.sameMount) return 'caller is in another mount namespace';
  if (!caller.samePid) return 'caller is in another pid namespace';
  if (!caller.sameRoot) return 'caller has another root directory';
  if (fds.length !== 3) return `the request carried ${fds.length} descriptors, not stdin, stdout and stderr`;
  const env = environmentMismatch(req.env, req.cwd, process.env);
  if (env) return env;
  if (req.args[0] !== 'run') return `"${req.args[0] ?? ''}" is not served here`;
  return undefined;
}

/** Runs `handler` for an accepted run; the caller's descriptors are closed once it returns. */
export async function serveRun(
  handler: RunHandler,
  request: RunRequest,
  fds: number[],
  signals: { subscribe(handler: (signal: number) => void): () => void },
): Promise<number | 'decline'> {
  const [stdin, out, err] = fds as [number, number, number];
  const call: RunCall = {
    request,
    stdio: { in: stdin, out, err },
    write(stream, text) {
      try {
        writeSync(stream === 'out' ? out : err, text);
      } catch (e) {
        log.warn({ err: String(e) }, 'failed to write to the caller');
      }
    },
    onSignal: (h) => signals.subscribe(h),
  };
  try {
    return await handler(call);
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}
