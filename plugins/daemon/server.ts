/**
 * The CNI daemon: serves the calls bin/cni/<type> (ctnet-cni-shim.c) hands over, with the plugins
 * already loaded, so a call costs the plugin's work and not a Node start (~40 ms each).
 *
 * It listens on an abstract unix socket, which exists only in the network namespace the daemon was
 * started in, and so serves exactly the callers whose "host" namespace that is. A call is declined
 * (the shim then runs the plugin itself) unless the caller is root, in the daemon's mount
 * namespace and root directory (paths in the call mean the same to both), with an absolute
 * CNI_NETNS. Calls run concurrently: the plugins enter namespaces only synchronously
 * (netns/switch.ts) and lock IPAM stores with non-blocking flock, as they do across processes.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { isAbsolute } from 'node:path';
import { DefaultExecutor, ErrorCode, handle, log, type PluginRegistry, residentLife } from '../../core/index.js';
import { callerMismatch, peerCredentials } from '../../netns/index.js';
import { declined, decodeRequest, encodeServed, maxRequestBytes, type ShimRequest } from './protocol.js';

export interface DaemonOptions {
  /** Abstract socket name (without the leading NUL), the one compiled into the shim. */
  socketName: string;
  registry: PluginRegistry;
  /** Stop after this long without a call (0: never). */
  idleExitMs?: number;
}

export interface RunningDaemon {
  server: Server;
  /** Stops accepting, lets calls in flight finish. */
  close(): Promise<void>;
}

/** Why a caller is not served here, or undefined when it is. */
function declineReason(peer: { pid: number; uid: number }, req: ShimRequest): string | undefined {
  const mismatch = callerMismatch(peer);
  if (mismatch) return mismatch;
  const netns = req.env.CNI_NETNS;
  if (netns && !isAbsolute(netns)) return 'CNI_NETNS is a relative path';
  return undefined;
}

function errorJson(msg: string, details: string): string {
  return `${JSON.stringify({ cniVersion: '1.1.0', code: ErrorCode.internal, msg, details })}\n`;
}

export function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const executor = new DefaultExecutor(opts.registry);
  const serve = async (socket: Socket, data: Buffer): Promise<void> => {
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    const req = decodeRequest(data);
    let peer: { pid: number; uid: number } | undefined;
    try {
      peer = typeof fd === 'number' && fd >= 0 ? peerCredentials(fd) : undefined;
    } catch (err) {
      log.warn({ err: String(err) }, 'failed to read the CNI caller’s credentials');
    }
    const reason = peer ? declineReason(peer, req) : 'no peer credentials';
    const plugin = opts.registry[req.type];
    if (reason || !plugin) {
      log.info({ type: req.type, reason: reason ?? 'not a ctnet plugin', pid: peer?.pid }, 'CNI call declined');
      socket.end(declined);
      return;
    }
    const started = performance.now();
    let outcome: { exitCode: number; stdout: string; stderr?: string | undefined };
    try {
      outcome = await handle(await plugin(), req.env, req.stdin, executor);
    } catch (err) {
      // handle() turns plugin failures into error JSON; this is a bug of ours, still answered in CNI's terms.
      outcome = { exitCode: 1, stdout: errorJson('ctnet CNI daemon failed', String(err)), stderr: '' };
    }
    log.debug(
      {
        type: req.type,
        command: req.env.CNI_COMMAND,
        containerId: req.env.CNI_CONTAINERID,
        exitCode: outcome.exitCode,
        ms: Math.round((performance.now() - started) * 10) / 10,
      },
      'CNI call served',
    );
    socket.end(encodeServed(outcome.exitCode, outcome.stdout, outcome.stderr ?? ''));
  };

  const server = createServer({ allowHalfOpen: true }, (socket) => {
    life.busy();
    const chunks: Buffer[] = [];
    let size = 0;
    socket.on('error', (err) => log.warn({ err: String(err) }, 'CNI daemon connection failed'));
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxRequestBytes) {
        log.warn({ size }, 'CNI daemon request too large: dropped');
        socket.destroy();
        return;
      }
      chunks.push(chunk);
    });
    // The shim shuts its side down after the request: only a whole request is acted on.
    socket.on('end', () => {
      if (socket.destroyed) return;
      life.track(
        serve(socket, Buffer.concat(chunks)).catch((err) => {
          log.warn({ err: String(err) }, 'CNI daemon request refused');
          socket.destroy();
        }),
      );
    });
  });
  const life = residentLife(server, 'ctnet CNI daemon', opts.idleExitMs);

  const daemon: RunningDaemon = { server, close: life.close };
  return life.listen(opts.socketName).then(() => daemon);
}
