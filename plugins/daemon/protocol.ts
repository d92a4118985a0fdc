/**
 * The wire format between bin/cni/<type> (ctnet-cni-shim.c, which documents it) and the CNI
 * daemon: one request per connection, lengths as little-endian u32.
 */

export const magic = 'CTNETCNI';
export const protocolVersion = 1;
/** A request is environment plus stdin: the shim caps stdin at 16 MiB; anything beyond is not a shim. */
export const maxRequestBytes = 24 << 20;

export interface ShimRequest {
  type: string;
  cwd: string;
  env: Record<string, string>;
  stdin: string;
}

export class ProtocolError extends Error {}

/** Parses a whole request; throws ProtocolError for anything a shim would not send. */
export function decodeRequest(data: Buffer): ShimRequest {
  if (data.length < 12 || data.toString('latin1', 0, 8) !== magic) throw new ProtocolError('not a ctnet CNI shim request');
  const version = data.readUInt32LE(8);
  if (version !== protocolVersion) throw new ProtocolError(`unsupported protocol version ${version}`);
  let at = 12;
  const field = (): Buffer => {
    if (data.length - at < 4) throw new ProtocolError('truncated request');
    const n = data.readUInt32LE(at);
    at += 4;
    if (data.length - at < n) throw new ProtocolError('truncated request');
    const out = data.subarray(at, at + n);
    at += n;
    return out;
  };
  const type = field().toString('utf8');
  const cwd = field().toString('utf8');
  const envBlock = field().toString('utf8');
  const stdin = field().toString('utf8');
  if (at !== data.length) throw new ProtocolError('trailing bytes after the request');
  const env: Record<string, string> = {};
  for (const entry of envBlock.split('\0')) {
    const eq = entry.indexOf('=');
    // Like getenv(3): the first of duplicate names wins.
    if (eq > 0 && !Object.hasOwn(env, entry.slice(0, eq))) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return { type, cwd, env, stdin };
}

/** Encodes a request as the shim does (tests and benchmarks speak to the daemon with it). */
export function encodeRequest(req: ShimRequest): Buffer {
  const envBlock = Object.entries(req.env)
    .map(([k, v]) => `${k}=${v}\0`)
    .join('');
  return Buffer.concat([
    Buffer.from(magic, 'latin1'),
    u32(protocolVersion),
    ...[req.type, req.cwd, envBlock, req.stdin].flatMap((s) => {
      const b = Buffer.from(s, 'utf8');
      return [u32(b.length), b];
    }),
  ]);
}

export const declined = u32(1);

export function encodeServed(exitCode: number, stdout: string, stderr: string): Buffer {
  const out = Buffer.from(stdout, 'utf8');
  const err = Buffer.from(stderr, 'utf8');
  return Buffer.concat([u32(0), u32(exitCode), u32(out.length), out, u32(err.length), err]);
}

export type ShimResponse = { served: false } | { served: true; exitCode: number; stdout: string; stderr: string };

export function decodeResponse(data: Buffer): ShimResponse {
  if (data.length < 4) throw new ProtocolError('truncated response');
  if (data.readUInt32LE(0) === 1) return { served: false };
  const exitCode = data.readUInt32LE(4);
  const outLen = data.readUInt32LE(8);
  const stdout = data.toString('utf8', 12, 12 + outLen);
  const errLen = data.readUInt32LE(12 + outLen);
  const stderr = data.toString('utf8', 16 + outLen, 16 + outLen + errLen);
  return { served: true, exitCode, stdout, stderr };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
