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

/** `err` as a CtnetError: itself, or code 100 (internal) with its message and `err` as the cause. */
export function asCtnetError(err: unknown): CtnetError {
  if (err instanceof CtnetError) return err;
  return new CtnetError(ErrorCode.internal, err instanceof Error ? err.message : String(err), { cause: err });
}

/**
 * The failures of steps that all ran (a teardown runs every step even when one fails), one error
 * that keeps each failure with its own code, as netavark's `NetavarkError::List`. Its own `code` is
 * the one its failures share, else the first failure's: the one a caller that wants a single code
 * (CNI error JSON, an exit status) acts on; `details` lists every failure with its code.
 */
export class CtnetErrorList extends CtnetError {
  readonly errors: readonly CtnetError[];

  constructor(what: string, errors: readonly CtnetError[], options: { hint?: string } = {}) {
    const first = errors[0];
    if (!first) throw new TypeError('CtnetErrorList needs at least one error');
    super(first.code, `failed to ${what}: ${errors.map((e) => e.message).join('; ')}`, {
      details: errors.map((e) => `code ${e.code}: ${e.message}`).join('; '),
      hint: options.hint,
      cause: first,
    });
    this.name = 'CtnetErrorList';
    this.errors = errors;
  }
}

/**
 * Runs independent steps, every one of them, and collects their failures: the shape of every
 * DEL, GC and release. `throwIfAny` then throws nothing, the one failure, or a CtnetErrorList.
 */
export class ErrorCollector {
  readonly errors: CtnetError[] = [];

  /** Runs `fn`; a failure is kept as "failed to <what>: <cause>" (or as it is, without `what`). */
  async attempt(what: string | undefined, fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.add(err, what);
    }
  }

  add(err: unknown, what?: string): void {
    if (err instanceof CtnetErrorList) this.errors.push(...err.errors);
    else this.errors.push(what === undefined ? asCtnetError(err) : wrapError(what, err));
  }

  get failed(): boolean {
    return this.errors.length > 0;
  }

  /** `what` names the whole task: "failed to <what>: …" when more than one step failed. */
  throwIfAny(what: string, options: { hint?: string } = {}): void {
    const [first, ...rest] = this.errors;
    if (!first) return;
    if (rest.length === 0 && options.hint === undefined) throw first;
    throw new CtnetErrorList(what, this.errors, options);
  }
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
