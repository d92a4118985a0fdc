/**
 * The wire format between bin/ctnet (runner/daemon/ctnet-front.c, which documents it) and the
 * runner daemon. Little-endian u32 throughout.
 */

export const magic = 'CTNETRUN';
export const protocolVersion = 1;
/** The front caps a request at 8 MiB (arguments and environment); anything beyond is not one. */
export const maxRequestBytes = 8 << 20;

export interface RunRequest {
  /** CLOCK_MONOTONIC of the front's start, in ms (for the startup phase of the timings). */
  startedMs: number;
  cwd: string;
  /** The arguments after the program name: "run", then run's flags and arguments. */
  args: string[];
  env: Record<string, string>;
}

export class ProtocolError extends Error {}

/**
 * How many bytes of `data` the first request takes, or undefined while it is incomplete.
 * Throws ProtocolError for anything the front would not send.
 */
export function requestLength(data: Buffer): number | undefined {
  if (data.length >= 8 && data.toString('latin1', 0, 8) !== magic) throw new ProtocolError('not a ctnet front request');
  if (data.length < 16) return undefined;
  const version = data.readUInt32LE(8);
  if (version !== protocolVersion) throw new ProtocolError(`unsupported protocol version ${version}`);
  const rest = data.readUInt32LE(12);
  if (rest > maxRequestBytes) throw new ProtocolError(`request of ${rest} bytes is too large`);
  return data.length >= 16 + rest ? 16 + rest : undefined;
}

/** Parses a whole request (requestLength bytes). */
export function decodeRequest(data: Buffer): RunRequest {
  const length = requestLength(data);
  if (length === undefined || length !== data.length) throw new ProtocolError('truncated request');
  let at = 16;
  if (data.length - at < 8) throw new ProtocolError('truncated request');
  const startedMs = data.readUInt32LE(at) + data.readUInt32LE(at + 4) * 2 ** 32;
  at += 8;
  const field = (): string => {
    if (data.length - at < 4) throw new ProtocolError('truncated request');
    const n = data.readUInt32LE(at);
    at += 4;
    if (data.length - at < n) throw new ProtocolError('truncated request');
    const out = data.toString('utf8', at, at + n);
    at += n;
    return out;
  };
  const cwd = field();
  const argBlock = field();
  const envBlock = field();
  if (at !== data.length) throw new ProtocolError('trailing bytes after the request');
  const args = argBlock ? argBlock.slice(0, -1).split('\0') : [];
  const env: Record<string, string> = {};
  for (const entry of envBlock.split('\0')) {
    const eq = entry.indexOf('=');
    // Like getenv(3): the first of duplicate names wins.
    if (eq > 0 && !Object.hasOwn(env, entry.slice(0, eq))) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return { startedMs, cwd, args, env };
}

/** Encodes a request as the front does (tests speak to the daemon with it). */
export function encodeRequest(req: RunRequest): Buffer {
  const block = (items: string[]) => Buffer.from(items.map((s) => `${s}\0`).join(''), 'utf8');
  const fields = [Buffer.from(req.cwd, 'utf8'), block(req.args), block(Object.entries(req.env).map(([k, v]) => `${k}=${v}`))];
  const rest = Buffer.concat([
    u32(req.startedMs % 2 ** 32),
    u32(Math.floor(req.startedMs / 2 ** 32)),
    ...fields.flatMap((f) => [u32(f.length), f]),
  ]);
  return Buffer.concat([Buffer.from(magic, 'latin1'), u32(protocolVersion), u32(rest.length), rest]);
}

export const signalFrame = 1;
export const declinedFrame = 1;
export const exitFrame = 2;

export const declined = u32(declinedFrame);

export function encodeExit(code: number): Buffer {
  return Buffer.concat([u32(exitFrame), u32(code)]);
}

/** Signal numbers in the frames that follow a request; leaves what is incomplete in the buffer. */
export function takeSignals(data: Buffer): { signals: number[]; rest: Buffer } {
  const signals: number[] = [];
  let at = 0;
  while (data.length - at >= 8) {
    if (data.readUInt32LE(at) !== signalFrame) throw new ProtocolError('unknown frame after the request');
    signals.push(data.readUInt32LE(at + 4));
    at += 8;
  }
  return { signals, rest: data.subarray(at) };
}

export function encodeSignal(signal: number): Buffer {
  return Buffer.concat([u32(signalFrame), u32(signal)]);
}

/** The socket name a daemon of this build uses for a state root (ctnetRoot()): the front computes the same. */
export function socketName(base: string, root: string): string {
  return `${base}-${fnv1a64(root)}`;
}

/** FNV-1a, 64 bits, as 16 hex digits. */
export function fnv1a64(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
