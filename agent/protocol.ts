/**
 * The agent's API (version 1): what its clients (bin/cni/<type>, agent/ctnet-cni-shim.c; bin/ctnet,
 * agent/ctnet-front.c; tests and benchmarks through encodeRequest) send on its socket, and what it
 * answers. The C clients carry the same layout, documented in core/c/ctnet-wire.h.
 *
 * Every message is a frame: u32 length (of what follows), u32 kind, then the payload; u32s are
 * little-endian. A connection carries one request:
 *
 *   client → agent   REQUEST  JSON (CniRequest | RunRequest below); a run's REQUEST frame carries the
 *                             caller's stdin, stdout and stderr as SCM_RIGHTS descriptors (agent/acceptor.ts)
 *                    SIGNAL   u32 signal number: a signal the client received, for the container (runs only)
 *   agent → client   DECLINED UTF-8 reason: nothing was done, the client does the work itself
 *                    CNI      u32 exit code, u32 stdout length, stdout, then stderr (the rest)
 *                    EXIT     u32 exit code: the run is over
 *
 * A client that loses the connection after its request went out reports a failure and does not
 * retry: the agent may have done part of the work (CNI error 11, or exit code 125 for a run).
 */

export const apiVersion = 1;

export const FrameKind = {
  request: 1,
  signal: 2,
} as const;

export const ReplyKind = {
  declined: 1,
  cni: 2,
  exit: 3,
} as const;

/** The largest REQUEST frame: a CNI config (16 MiB at most, as the shim caps stdin) plus environment. */
export const maxRequestBytes = 24 << 20;
/** The most descriptors a REQUEST may carry: a run's stdin, stdout and stderr. */
export const maxRequestFds = 3;

/** One CNI plugin call: the command and the other CNI_* variables, and the network configuration (stdin). */
export interface CniRequest {
  api: 1;
  kind: 'cni';
  /** The plugin type, the name the shim was run as. */
  plugin: string;
  /** The caller's CNI_* variables (the shim sends no other). */
  env: Record<string, string>;
  config: string;
}

/** One `ctnet run`, as the command line and the environment it was given (the agent parses it as the CLI does). */
export interface RunRequest {
  api: 1;
  kind: 'run';
  /** The arguments after the program name: "run", then run's flags and arguments. */
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** CLOCK_MONOTONIC of the client's start, in ms (the startup phase of CTNET_TIMING). */
  startedMs: number;
}

export type AgentRequest = CniRequest | RunRequest;

export class ProtocolError extends Error {}

/** Parses a REQUEST frame's payload; throws ProtocolError for anything a client of this API would not send. */
export function decodeRequest(payload: Uint8Array): AgentRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    throw new ProtocolError('the request is not JSON');
  }
  if (typeof raw !== 'object' || raw === null) throw new ProtocolError('the request is not an object');
  const r = raw as Record<string, unknown>;
  if (r.api !== apiVersion) throw new ProtocolError(`unsupported API version ${String(r.api)}`);
  const env = environment(r.env);
  if (r.kind === 'cni') {
    if (typeof r.plugin !== 'string' || typeof r.config !== 'string') throw new ProtocolError('malformed CNI request');
    return { api: 1, kind: 'cni', plugin: r.plugin, env, config: r.config };
  }
  if (r.kind === 'run') {
    const args = r.args;
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string') || typeof r.cwd !== 'string') {
      throw new ProtocolError('malformed run request');
    }
    const startedMs = typeof r.startedMs === 'number' && Number.isFinite(r.startedMs) ? r.startedMs : 0;
    return { api: 1, kind: 'run', args, cwd: r.cwd, env, startedMs };
  }
  throw new ProtocolError(`unknown request kind ${String(r.kind)}`);
}

/** "NAME=value" entries, as execve has them; like getenv(3), the first of duplicate names wins. */
function environment(entries: unknown): Record<string, string> {
  if (!Array.isArray(entries)) throw new ProtocolError('the environment is not a list');
  const env: Record<string, string> = {};
  for (const entry of entries) {
    if (typeof entry !== 'string') throw new ProtocolError('an environment entry is not a string');
    const eq = entry.indexOf('=');
    if (eq > 0 && !Object.hasOwn(env, entry.slice(0, eq))) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** A REQUEST frame as the C clients build it (tests and benchmarks speak to the agent with it). */
export function encodeRequest(req: AgentRequest): Buffer {
  const { env, ...rest } = req;
  const body = { ...rest, env: Object.entries(env).map(([k, v]) => `${k}=${v}`) };
  return frame(FrameKind.request, Buffer.from(JSON.stringify(body), 'utf8'));
}

export function encodeSignal(signal: number): Buffer {
  return frame(FrameKind.signal, u32(signal));
}

export function encodeDeclined(reason: string): Buffer {
  return frame(ReplyKind.declined, Buffer.from(reason, 'utf8'));
}

export function encodeCniReply(exitCode: number, stdout: string, stderr: string): Buffer {
  const out = Buffer.from(stdout, 'utf8');
  return frame(ReplyKind.cni, Buffer.concat([u32(exitCode), u32(out.length), out, Buffer.from(stderr, 'utf8')]));
}

export function encodeExit(code: number): Buffer {
  return frame(ReplyKind.exit, u32(code));
}

export interface Frame {
  kind: number;
  payload: Buffer;
}

/** The whole frames at the start of `data`, and what is left of an incomplete one. */
export function takeFrames(data: Buffer, maxBytes = maxRequestBytes): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let at = 0;
  while (data.length - at >= 8) {
    const length = data.readUInt32LE(at);
    if (length < 4 || length > maxBytes) throw new ProtocolError(`frame of ${length} bytes`);
    if (data.length - at - 4 < length) break;
    frames.push({ kind: data.readUInt32LE(at + 4), payload: data.subarray(at + 8, at + 4 + length) });
    at += 4 + length;
  }
  return { frames, rest: data.subarray(at) };
}

export type Reply =
  | { kind: 'declined'; reason: string }
  | { kind: 'cni'; exitCode: number; stdout: string; stderr: string }
  | { kind: 'exit'; code: number };

/** Reads the agent's answer frame (tests and benchmarks). */
export function decodeReply(f: Frame): Reply {
  if (f.kind === ReplyKind.declined) return { kind: 'declined', reason: f.payload.toString('utf8') };
  if (f.kind === ReplyKind.exit) return { kind: 'exit', code: f.payload.readUInt32LE(0) };
  if (f.kind === ReplyKind.cni) {
    const outLen = f.payload.readUInt32LE(4);
    return {
      kind: 'cni',
      exitCode: f.payload.readUInt32LE(0),
      stdout: f.payload.toString('utf8', 8, 8 + outLen),
      stderr: f.payload.toString('utf8', 8 + outLen),
    };
  }
  throw new ProtocolError(`unknown reply kind ${f.kind}`);
}

function frame(kind: number, payload: Buffer): Buffer {
  return Buffer.concat([u32(payload.length + 4), u32(kind), payload]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
