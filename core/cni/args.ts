/**
 * CNI_ARGS: "K1=V1;K2=V2" (conventions: unknown keys fail unless IgnoreUnknown). Like the reference,
 * an empty pair (";;", a trailing ";") and a pair without exactly one "=" are refused. A key given
 * twice with different values is refused too: which one the runtime meant cannot be known (the
 * reference's host-local silently takes the last).
 */
import { CtnetError, ErrorCode } from '../errors.js';

export function parseCniArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!text) return out;
  for (const pair of text.split(';')) {
    const parts = pair.split('=');
    if (parts.length !== 2) {
      throw new CtnetError(ErrorCode.invalidEnv, `invalid CNI_ARGS pair ${JSON.stringify(pair)}: expected KEY=VALUE`);
    }
    const [key, value] = parts as [string, string];
    const earlier = out.get(key);
    if (earlier !== undefined && earlier !== value) {
      throw new CtnetError(
        ErrorCode.invalidEnv,
        `invalid CNI_ARGS: ${JSON.stringify(key)} is set twice, to ${JSON.stringify(earlier)} and ${JSON.stringify(value)}`,
      );
    }
    out.set(key, value);
  }
  return out;
}

/** Returns the known keys; an unknown key is an error unless IgnoreUnknown=1|true is present. */
export function pickCniArgs(text: string, known: readonly string[]): Map<string, string> {
  const all = parseCniArgs(text);
  const ignore = /^(1|true)$/i.test(all.get('IgnoreUnknown') ?? '');
  const out = new Map<string, string>();
  for (const [k, v] of all) {
    if (k === 'IgnoreUnknown') continue;
    if (known.includes(k)) out.set(k, v);
    else if (!ignore) {
      throw new CtnetError(ErrorCode.invalidEnv, `unknown CNI_ARGS key ${JSON.stringify(k)} (set IgnoreUnknown=1 to ignore it)`);
    }
  }
  return out;
}
