/**
 * The agent: one resident process per host network namespace that serves the CNI calls of that
 * namespace (bin/cni/<type>) and `ctnet run` (bin/ctnet) with the code already loaded and warm.
 * Requests are typed (agent/protocol.ts); the socket, the callers' identity and their descriptors
 * are agent/acceptor.ts's; CNI calls are agent/cni.ts's, runs a handler's (agent/run.ts).
 *
 * Nothing depends on it: its clients do the work themselves when no agent answers, when it declines,
 * or when it is out of service.
 */
import { closeSync } from 'node:fs';
import { log, type PluginRegistry } from '../core/index.js';
import { type Accepted, startAcceptor } from './acceptor.js';
import { cniService } from './cni.js';
import { decodeRequest, encodeCniReply, encodeDeclined, encodeExit, FrameKind, ProtocolError, takeFrames } from './protocol.js';
import { type RunHandler, runDeclineReason, serveRun } from './run.js';

export interface AgentOptions {
  /** Abstract socket name (without the leading NUL): the one compiled into this build's clients. */
  socketName: string;
  registry: PluginRegistry;
  /** Serves runs; without it every run is declined. */
  runHandler?: RunHandler;
  /** Stop after this long without a call (0: never). */
  idleExitMs?: number;
  /** A CNI call's deadline. */
  callDeadlineMs: number;
  /** How long the event loop may be stuck before the agent takes itself out of service (0: never). */
  watchdogMs: number;
  /**
   * Test hook (CTNET_AGENT_TEST_STALL): a CNI call for this container ID blocks the event loop for good,
   * as a stuck synchronous call would, so that tests can see the watchdog act.
   */
  stallContainerId?: string | undefined;
}

export interface RunningAgent {
  /** Stops accepting, lets the calls in flight finish (runs: their containers' whole lives). */
  close(): Promise<void>;
  /** Resolves once the agent has closed (by close() or after idling). */
  closed: Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const cni = cniService(opts.registry, opts.callDeadlineMs);
  const inFlight = new Set<Promise<unknown>>();
  let idleTimer: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;
  let markClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });

  const armIdle = () => {
    if (!opts.idleExitMs) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      if (inFlight.size > 0) return;
      log.info({ idleExitMs: opts.idleExitMs }, 'ctnet agent idle: exiting');
      void agent.close();
    }, opts.idleExitMs);
  };
  const track = (work: Promise<unknown>) => {
    clearTimeout(idleTimer);
    inFlight.add(work);
    const done = () => {
      inFlight.delete(work);
      if (inFlight.size === 0) armIdle();
    };
    work.then(done, done);
  };

  const onRequest = (a: Accepted) => {
    track(
      serve(a).catch((err) => {
        log.warn({ err: String(err), protocol: err instanceof ProtocolError }, 'ctnet agent request failed');
        a.socket.destroy();
      }),
    );
  };

  const serve = async (a: Accepted): Promise<void> => {
    const { socket, caller } = a;
    socket.on('error', (err) => log.warn({ err: String(err) }, 'ctnet agent connection failed'));
    let req: ReturnType<typeof decodeRequest>;
    try {
      req = decodeRequest(a.payload);
    } catch (err) {
      for (const fd of a.fds) closeSync(fd);
      throw err;
    }
    if (req.kind === 'cni') {
      for (const fd of a.fds) closeSync(fd);
      if (opts.stallContainerId && req.env.CNI_CONTAINERID === opts.stallContainerId) {
        log.warn({ containerId: opts.stallContainerId }, 'test hook: blocking the event loop');
        for (;;) {
          /* stuck, as a synchronous call that never returns */
        }
      }
      const started = performance.now();
      const answer = await cni.serve(req, caller);
      const fields = {
        type: req.plugin,
        command: req.env.CNI_COMMAND,
        containerId: req.env.CNI_CONTAINERID,
        callerPid: caller.pid,
      };
      if ('declined' in answer) {
        log.info({ ...fields, reason: answer.declined }, 'CNI call declined');
        socket.end(encodeDeclined(answer.declined));
        return;
      }
      log.debug(
        { ...fields, exitCode: answer.exitCode, ms: Math.round((performance.now() - started) * 10) / 10 },
        'CNI call served',
      );
      socket.end(encodeCniReply(answer.exitCode, answer.stdout, answer.stderr));
      return;
    }

    const reason = opts.runHandler ? runDeclineReason(caller, req, a.fds) : 'this agent serves no runs';
    if (reason || !opts.runHandler) {
      for (const fd of a.fds) closeSync(fd);
      // Visible by default: an agent that declines every run (another CTNET_ROOT…) only looks slow.
      log.warn({ reason, callerPid: caller.pid }, 'run declined: the caller runs it itself');
      socket.end(encodeDeclined(reason ?? 'declined'));
      return;
    }
    const handlers = new Set<(signal: number) => void>();
    const early: number[] = [];
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      try {
        const { frames, rest } = takeFrames(Buffer.concat([pending, chunk]), 64);
        pending = rest;
        for (const f of frames) {
          if (f.kind !== FrameKind.signal || f.payload.length !== 4) throw new ProtocolError(`unexpected frame ${f.kind}`);
          const sig = f.payload.readUInt32LE(0);
          if (handlers.size === 0) early.push(sig);
          for (const h of handlers) h(sig);
        }
      } catch (err) {
        log.warn({ err: String(err) }, 'ctnet agent: bad frame from a run client');
        pending = Buffer.alloc(0);
      }
    });
    const outcome = await serveRun(opts.runHandler, req, a.fds, {
      subscribe(h) {
        handlers.add(h);
        // What came before anyone listened (while the container was being made) is its due as well.
        for (const sig of early.splice(0)) h(sig);
        return () => handlers.delete(h);
      },
    });
    if (outcome === 'decline') {
      log.info({ callerPid: caller.pid }, 'run declined by its command');
      socket.end(encodeDeclined('declined by the command'));
      return;
    }
    if (!socket.destroyed) socket.end(encodeExit(outcome));
  };

  const acceptor = await startAcceptor({
    socketName: opts.socketName,
    watchdogMs: opts.watchdogMs,
    logFile: process.env.CTNET_LOG_FILE,
    onRequest,
  });
  armIdle();

  const agent: RunningAgent = {
    close() {
      closing ??= (async () => {
        clearTimeout(idleTimer);
        await acceptor.stop();
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        await cni.idle();
        markClosed();
      })();
      return closing;
    },
    closed,
  };
  return agent;
}
