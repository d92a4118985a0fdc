/**
 * Logging through pino, to stderr or to a file, never to stdout (stdout is the CNI result).
 *
 * pino costs tens of milliseconds to load and every plugin call pays startup, so the logger is
 * a thin shim that loads pino only when a message at an enabled level is actually written.
 * Level: CTNET_LOG_LEVEL (default "warn"); destination: CTNET_LOG_FILE (default stderr).
 */
import { createRequire } from 'node:module';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
const levelRank: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Number.POSITIVE_INFINITY,
};

export interface Logger {
  trace(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
  enabled(level: LogLevel): boolean;
}

interface PinoLike {
  [level: string]: unknown;
  child(bindings: Record<string, unknown>): PinoLike;
}

function parseLevel(value: string | undefined): LogLevel {
  return value && value in levelRank ? (value as LogLevel) : 'warn';
}

let root: PinoLike | undefined;
function loadPino(level: LogLevel): PinoLike {
  if (root) return root;
  const require = createRequire(import.meta.url);
  const pino = require('pino') as (opts: object, dest?: unknown) => PinoLike;
  const file = process.env.CTNET_LOG_FILE;
  const dest = file
    ? (pino as unknown as { destination: (o: object) => unknown }).destination({ dest: file, append: true, sync: true })
    : (pino as unknown as { destination: (o: object) => unknown }).destination({ fd: 2, sync: true });
  root = pino({ level, base: { pid: process.pid } }, dest);
  return root;
}

class LazyLogger implements Logger {
  constructor(
    private readonly level: LogLevel,
    private readonly bindings: Record<string, unknown>,
  ) {}

  enabled(level: LogLevel): boolean {
    return levelRank[level] >= levelRank[this.level];
  }

  private write(level: Exclude<LogLevel, 'silent'>, obj: object | string, msg?: string): void {
    if (!this.enabled(level)) return;
    let logger = loadPino(this.level);
    if (Object.keys(this.bindings).length) logger = logger.child(this.bindings);
    (logger[level] as (o: unknown, m?: string) => void).call(logger, obj, msg);
  }

  trace(obj: object | string, msg?: string) {
    this.write('trace', obj, msg);
  }
  debug(obj: object | string, msg?: string) {
    this.write('debug', obj, msg);
  }
  info(obj: object | string, msg?: string) {
    this.write('info', obj, msg);
  }
  warn(obj: object | string, msg?: string) {
    this.write('warn', obj, msg);
  }
  error(obj: object | string, msg?: string) {
    this.write('error', obj, msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new LazyLogger(this.level, { ...this.bindings, ...bindings });
  }
}

export const log: Logger = new LazyLogger(parseLevel(process.env.CTNET_LOG_LEVEL), {});
