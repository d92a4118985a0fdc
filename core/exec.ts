/**
 * The one place that spawns programs. Every call is time-bound (a hung iptables or nft must not
 * hang an orchestrator: see cni-user-issues #6 and #8). A process that asked for it (the CNI plugin binaries:
 * preferPosixSpawn) starts absolute paths with posix_spawn (posix-spawn.ts), others through child_process.
 */
import type * as ChildProcessModule from 'node:child_process';
import { createRequire } from 'node:module';
import { CtnetError, ErrorCode } from './errors.js';
import { log } from './log.js';
import { spawnNative } from './posix-spawn.js';

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Resolve instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  cwd?: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const defaultTimeoutMs = 30_000;

// node:child_process pulls in node:net (~10 ms at startup); plugins that never spawn (host-local)
// must not pay for it, so it is loaded on the first run().
let childProcess: typeof ChildProcessModule | undefined;
const spawn = ((...args: unknown[]) => {
  childProcess ??= createRequire(import.meta.url)('node:child_process') as typeof ChildProcessModule;
  return (childProcess.spawn as (...a: unknown[]) => unknown)(...args);
}) as typeof ChildProcessModule.spawn;

export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const native =
    options.cwd === undefined ? spawnNative(file, args, options.input ?? '', options.env ?? process.env, timeoutMs) : undefined;
  if (native) {
    return native.then(
      (r) => settle(file, args, options, timeoutMs, r.code, r.signal, r.stdout, r.stderr),
      (e: Error) => {
        throw new CtnetError(ErrorCode.io, `failed to run ${file}: ${e.message}`, { cause: e });
      },
    );
  }
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      reject(new CtnetError(ErrorCode.io, `failed to run ${file}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      settle(file, args, options, timeoutMs, code, signal, stdout, stderr).then(resolve, reject);
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading its input; its exit code tells the story */
    });
    child.stdin.end(options.input ?? '');
  });
}

/** What a finished program means to run()'s caller, however it was started. */
async function settle(
  file: string,
  args: readonly string[],
  options: RunOptions,
  timeoutMs: number,
  code: number | null,
  signal: string | null,
  stdout: string,
  stderr: string,
): Promise<RunResult> {
  const result = { code: code ?? 128, stdout, stderr };
  log.debug({ file, args, code: result.code, signal }, 'ran');
  if (signal === 'SIGKILL' && code === null) {
    throw new CtnetError(ErrorCode.tryAgainLater, `${file} did not finish within ${timeoutMs} ms`);
  }
  if (result.code !== 0 && !options.allowFailure) {
    const text = result.stderr.trim() || result.stdout.trim() || `exit code ${result.code}`;
    throw new CtnetError(ErrorCode.internal, `${file} ${args.join(' ')}: ${text}`, { details: text });
  }
  return result;
}
