/**
 * The life of a resident daemon's socket server (the CNI daemon's and the runner daemon's): the
 * calls in flight, an exit after a while without any, and a close that lets those calls finish.
 */
import type { Server } from 'node:net';
import { log } from './log.js';

export interface ResidentLife {
  /** A connection came in: no idle exit until its call has ended. */
  busy(): void;
  /** Counts a call (a promise that never rejects) until it settles. */
  track(work: Promise<unknown>): void;
  /** Listens on the abstract socket `name` (without the leading NUL). */
  listen(name: string): Promise<void>;
  /** Stops accepting, then waits for the calls in flight. */
  close(): Promise<void>;
}

/** `what` names the daemon in its log; `idleExitMs` 0 or undefined: never exit for idling. */
export function residentLife(server: Server, what: string, idleExitMs: number | undefined): ResidentLife {
  const inFlight = new Set<Promise<unknown>>();
  let idleTimer: NodeJS.Timeout | undefined;
  const armIdle = () => {
    if (!idleExitMs) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      if (inFlight.size > 0) return;
      log.info({ idleExitMs }, `${what} idle: exiting`);
      void life.close();
    }, idleExitMs);
  };
  const life: ResidentLife = {
    busy: () => clearTimeout(idleTimer),
    track(work) {
      inFlight.add(work);
      const done = () => {
        inFlight.delete(work);
        if (inFlight.size === 0) armIdle();
      };
      work.then(done, done);
    },
    listen: (name) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(`\0${name}`, () => {
          server.off('error', reject);
          armIdle();
          resolve();
        });
      }),
    async close() {
      clearTimeout(idleTimer);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...inFlight]);
    },
  };
  return life;
}
