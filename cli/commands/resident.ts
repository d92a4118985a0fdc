/** What the commands that start a resident daemon (`cni-daemon`, `daemon`) share. */
import { CtnetError, ErrorCode } from '../../core/index.js';

/** `--idle-exit <seconds>` in ms (0: never). */
export function idleExitMs(text: string): number {
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid --idle-exit "${text}": expected seconds ≥ 0`);
  }
  return seconds * 1000;
}

/** The error for a daemon that could not listen; `scope` says what one daemon serves. */
export function listenFailure(err: unknown, what: string, scope: string): CtnetError {
  const inUse = (err as { code?: string }).code === 'EADDRINUSE';
  return new CtnetError(
    inUse ? ErrorCode.exists : ErrorCode.io,
    inUse ? `failed to start ${what}: one already serves ${scope}` : `failed to start ${what}: ${(err as Error).message}`,
  );
}
