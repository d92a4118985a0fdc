/**
 * flock(2) through koffi, the lock the reference host-local (go-filemutex) takes on
 * `<dataDir>/<network>/lock`, so ctnet and the reference exclude each other on one lease dir.
 *
 * Never an unbounded wait (cni-user-issues #8: thousands of host-local processes queued on one
 * lock behind a hung holder): LOCK_NB attempts with a short async backoff up to a deadline, then
 * code 11 "try again later". The kernel drops the lock when its holder dies, so a crash never
 * leaves it stale.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { CtnetError, ErrorCode, loadKoffi } from '../core/index.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

export const defaultLockTimeoutMs = 10_000;

interface Libc {
  flock(fd: number, operation: number): number;
  errno(): number;
}

let libc: Libc | undefined;
function loadLibc(): Libc {
  if (libc) return libc;
  const koffi = loadKoffi();
  const flock = koffi.load('libc.so.6').func('int flock(int fd, int operation)');
  libc = { flock: (fd, op) => flock(fd, op) as number, errno: () => koffi.errno() };
  return libc;
}

export interface FileLock {
  readonly path: string;
  /** Closing the descriptor releases the lock. Idempotent. */
  release(): void;
}

export interface LockOptions {
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Takes an exclusive flock on `path` (created 0600 if missing). */
export async function lockFile(path: string, options: LockOptions = {}): Promise<FileLock> {
  const timeoutMs = options.timeoutMs ?? (Number(process.env.CTNET_IPAM_LOCK_TIMEOUT_MS) || defaultLockTimeoutMs);
  const c = loadLibc();
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO put in the lock file's place must not hang the open (flock works on any file).
    fd = openSync(path, constants.O_CREAT | constants.O_RDONLY | constants.O_NONBLOCK, 0o600);
  } catch (cause) {
    throw new CtnetError(ErrorCode.io, `failed to open lock file ${path}: ${(cause as Error).message}`, { cause });
  }
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) break;
    const errno = c.errno();
    if (errno === EINTR) continue;
    if (errno !== EWOULDBLOCK) {
      closeSync(fd);
      throw new CtnetError(ErrorCode.io, `failed to lock ${path}: flock errno ${errno}`);
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      closeSync(fd);
      throw new CtnetError(
        ErrorCode.tryAgainLater,
        `failed to lock ${path}: still held by another process after ${timeoutMs} ms`,
        {
          hint: 'another IPAM call is holding the lease directory lock; try again later',
        },
      );
    }
    // Jittered exponential backoff (1 ms → 20 ms) so waiting processes do not retry in lockstep.
    await sleep(Math.min(left, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 20);
  }
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      closeSync(fd);
    },
  };
}
