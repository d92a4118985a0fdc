/** CNI_ARGS: "K1=V1;K2=V2" (types/args.go semantics: unknown keys fail unless IgnoreUnknown). */
import { CtnetError, ErrorCode } from '../errors.js';

export function parseCniArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!text) return out;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const parts = pair.split('=');
    if (parts.length !== 2 || !parts[0]) {
      throw new CtnetError(ErrorCode.invalidEnv, `invalid CNI_ARGS pair ${JSON.stringify(pair)}: expected KEY=VALUE`);
    }
    out.set(parts[0], parts[1] ?? '');
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
