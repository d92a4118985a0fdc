/**
 * One error class for the whole project. `code` is the CNI error code (spec §Error) so that
 * skel can print it unchanged; the CLI maps any code to a non-zero exit. Tests assert on codes.
 */
export const ErrorCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  invalidNetns: 8,
  tryAgainLater: 11,
  notAvailable: 50,
  notAvailableDegraded: 51,
  /** Plugin-specific codes start at 100 (spec: 0-99 are reserved). */
  internal: 100,
  portConflict: 101,
  noAddressesLeft: 102,
  exists: 103,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface CtnetErrorOptions {
  details?: string;
  hint?: string;
  cause?: unknown;
}

export class CtnetError extends Error {
  readonly code: number;
  readonly details: string | undefined;
  readonly hint: string | undefined;

  constructor(code: number, message: string, options: CtnetErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CtnetError';
    this.code = code;
    this.details = options.details;
    this.hint = options.hint;
  }
}

/** Wraps `cause` as "failed to <what>: <cause>", keeping the cause's code if it has one. */
export function wrapError(what: string, cause: unknown, code?: number): CtnetError {
  const inner = cause instanceof CtnetError ? cause : undefined;
  const causeText = cause instanceof Error ? cause.message : String(cause);
  return new CtnetError(code ?? inner?.code ?? ErrorCode.internal, `failed to ${what}: ${causeText}`, {
    cause,
    details: inner?.details,
    hint: inner?.hint,
  });
}

export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** Walks the cause chain for a Node/netlink errno string such as ENOENT or EEXIST. */
export function hasErrno(err: unknown, ...codes: string[]): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 10; depth++) {
    const code = errnoOf(e);
    if (code && codes.includes(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
