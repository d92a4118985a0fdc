/**
 * The runner daemon: serves `ctnet run` for bin/ctnet (runner/daemon/ctnet-front.c) from one
 * resident process, so a container costs its own work and not a Node start, a CLI load and cold
 * plugin code each time (Docker's dockerd layout; without a daemon, ctnet works as Podman does).
 *
 * It listens on an abstract unix socket named after this build and its state root, which exists
 * only in the network namespace it was started in. A caller is served only when what the command
 * means depends on nothing that differs between the two processes: root, the same mount and pid
 * namespaces and root directory, the same ctnet environment (CTNET_*, CNI_PATH). Anything
 * else is declined before anything is done, and the front runs the Node CLI instead.
 *
 * The caller's stdout and stderr are taken with pidfd_getfd(2) and handed to the container as its
 * own; messages of the command itself (an id, an error) are written there too. Signals the front
 * receives arrive as frames and go to the container. A caller that goes away does not stop the
 * container (as with `docker run`): it is released when it exits, as any other.
 */
import { closeSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { isAbsolute } from 'node:path';
import { log, residentLife } from '../../core/index.js';
import { ctnetRoot } from '../../inspect/index.js';
import { borrowFd, callerMismatch, peerCredentials } from '../../netns/index.js';
import { declined, decodeRequest, encodeExit, ProtocolError, type RunRequest, requestLength, takeSignals } from './protocol.js';

/** One accepted call, as the command handler sees it. */
export interface RunCall {
  request: RunRequest;
  /** The caller's stdout and stderr (borrowed on first use, closed after the call). */
  output(): { out: number; err: number };
  write(stream: 'out' | 'err', text: string): void;
  /** Calls `handler` with each signal the caller forwards, until the returned function is called. */
  onSignal(handler: (signal: number) => void): () => void;
}

/** The command's exit code, or `decline` (only before it has done anything) to send the caller to the CLI. */
export type RunHandler = (call: RunCall) => Promise<number | 'decline'>;

export interface RunnerDaemonOptions {
  /** Abstract socket name without the leading NUL (protocol.ts socketName). */
  socketName: string;
  handler: RunHandler;
  /** Stop after this long without a call in flight (0: never). */
  idleExitMs?: number;
}

export interface RunningRunnerDaemon {
  server: Server;
  /** Stops accepting and waits for the calls in flight (their containers' whole lives). */
  close(): Promise<void>;
}

/**
 * Environment names that choose ctnet's state and configuration: a caller must agree with the
 * daemon on them. PATH is not one: like dockerd, the daemon finds its programs (ip, nft) with its
 * own, which a service manager sets differently from a login shell.
 */
function meaningfulEnv(name: string): boolean {
  if (name === 'CTNET_TIMING' || name === 'CTNET_DAEMON') return false;
  return name.startsWith('CTNET_') || name === 'CNI_PATH';
}

/** Why a caller's environment is not the daemon's, or undefined when they agree. */
export function environmentMismatch(caller: Record<string, string>, cwd: string, own: NodeJS.ProcessEnv): string | undefined {
  const names = new Set([...Object.keys(caller), ...Object.keys(own)].filter(meaningfulEnv));
  for (const name of [...names].sort()) {
    // The state root as ctnet resolves it: unset and the default path are one root.
    const same = name === 'CTNET_ROOT' ? ctnetRoot(caller) === ctnetRoot(own) : (caller[name] ?? '') === (own[name] ?? '');
    if (!same) return `${name} differs from the daemon's`;
  }
  const root = own.CTNET_ROOT;
  if (root && !isAbsolute(root) && cwd !== process.cwd()) return 'CTNET_ROOT is relative and the working directories differ';
  return undefined;
}

export function startRunnerDaemon(opts: RunnerDaemonOptions): Promise<RunningRunnerDaemon> {
  const serve = async (
    socket: Socket,
    request: RunRequest,
    signals: Set<(signal: number) => void>,
    early: number[],
  ): Promise<void> => {
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    let peer: { pid: number; uid: number } | undefined;
    try {
      peer = typeof fd === 'number' && fd >= 0 ? peerCredentials(fd) : undefined;
    } catch (err) {
      log.warn({ err: String(err) }, 'failed to read the caller’s credentials');
    }
    const reason = peer
      ? (callerMismatch(peer, { samePidNamespace: true }) ??
        environmentMismatch(request.env, request.cwd, process.env) ??
        (request.args[0] === 'run' ? undefined : `"${request.args[0] ?? ''}" is not served here`))
      : 'no peer credentials';
    if (reason || !peer) {
      // Visible by default: a daemon that declines everything (another CTNET_ROOT…) only looks slow.
      log.warn({ reason, pid: peer?.pid }, 'runner call declined: the caller runs it itself');
      socket.end(declined);
      return;
    }
    const caller = peer.pid;
    let output: { out: number; err: number } | undefined;
    const call: RunCall = {
      request,
      output() {
        output ??= { out: borrowFd(caller, 1), err: borrowFd(caller, 2) };
        return output;
      },
      write(stream, text) {
        const fds = call.output();
        try {
          writeSync(stream === 'out' ? fds.out : fds.err, text);
        } catch (err) {
          log.warn({ err: String(err) }, 'failed to write to the caller');
        }
      },
      onSignal(handler) {
        signals.add(handler);
        // What came before anyone listened (while the container was being made) is its due as well.
        for (const sig of early.splice(0)) handler(sig);
        return () => signals.delete(handler);
      },
    };
    let outcome: number | 'decline';
    try {
      outcome = await opts.handler(call);
    } finally {
      if (output) {
        closeSync(output.out);
        closeSync(output.err);
      }
    }
    if (outcome === 'decline') {
      if (output) throw new Error('the handler declined after taking the caller’s output');
      log.info({ pid: caller }, 'runner call declined by its command');
      socket.end(declined);
      return;
    }
    if (!socket.destroyed) socket.end(encodeExit(outcome));
  };

  const server = createServer({ allowHalfOpen: true }, (socket) => {
    life.busy();
    let pending: Buffer = Buffer.alloc(0);
    let started = false;
    const signals = new Set<(signal: number) => void>();
    const early: number[] = [];
    socket.on('error', (err) => log.warn({ err: String(err) }, 'runner daemon connection failed'));
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      try {
        if (!started) {
          const length = requestLength(pending);
          if (length === undefined) return;
          const request = decodeRequest(pending.subarray(0, length));
          pending = pending.subarray(length);
          started = true;
          life.track(
            serve(socket, request, signals, early).catch((err) => {
              // A bug of ours after the request was taken: the caller learns it and exits 125.
              log.error({ err: String(err) }, 'runner daemon call failed');
              socket.destroy();
            }),
          );
        }
        const { signals: received, rest } = takeSignals(pending);
        pending = rest;
        for (const sig of received) {
          if (signals.size === 0) early.push(sig);
          for (const handler of signals) handler(sig);
        }
      } catch (err) {
        log.warn({ err: String(err), protocol: err instanceof ProtocolError }, 'runner daemon request refused');
        socket.destroy();
      }
    });
  });

  const life = residentLife(server, 'ctnet runner daemon', opts.idleExitMs);
  const daemon: RunningRunnerDaemon = { server, close: life.close };
  return life.listen(opts.socketName).then(() => daemon);
}
