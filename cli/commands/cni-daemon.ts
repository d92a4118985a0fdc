import type { Command } from 'commander';
import { CtnetError, ErrorCode, log } from '../../core/index.js';
import { idleExitMs, listenFailure } from './resident.js';

/** Set by the build (scripts/build.mjs) to the socket name compiled into bin/cni/<type>. */
declare const __CTNET_CNI_SOCKET__: string | undefined;

/** The socket name this build's shims use; undefined when run from source (not built). */
export function builtCniSocket(): string | undefined {
  return typeof __CTNET_CNI_SOCKET__ === 'string' ? __CTNET_CNI_SOCKET__ : undefined;
}

export function cniSocketName(): string {
  const name = builtCniSocket();
  if (!name) {
    throw new CtnetError(ErrorCode.internal, 'failed to start the CNI daemon: this ctnet was not built with `npm run build`');
  }
  return name;
}

export function register(program: Command): void {
  program
    .command('cni-daemon')
    .description(
      'serve the CNI plugin calls of this network namespace from one resident process (bin/cni/* hand their calls to it; without it they run on their own)',
    )
    .option('--idle-exit <seconds>', 'exit after this many seconds without a call (0: never)', '0')
    .action(async (opts: { idleExit: string }) => {
      const idle = idleExitMs(opts.idleExit);
      const [{ startDaemon }, { builtinPlugins }] = await Promise.all([
        import('../../plugins/daemon/server.js'),
        import('../../plugins/registry.js'),
      ]);
      const socketName = cniSocketName();
      let daemon: Awaited<ReturnType<typeof startDaemon>>;
      try {
        daemon = await startDaemon({ socketName, registry: builtinPlugins, idleExitMs: idle });
      } catch (err) {
        throw listenFailure(err, 'the CNI daemon', 'this network namespace');
      }
      log.info({ socket: `@${socketName}`, pid: process.pid }, 'ctnet CNI daemon listening');
      process.stderr.write(`ctnet CNI daemon: serving @${socketName} (pid ${process.pid})\n`);
      await new Promise<void>((resolve) => {
        const stop = () => void daemon.close().then(resolve);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
        daemon.server.once('close', resolve);
      });
    });
}
