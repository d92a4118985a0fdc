/**
 * Calling a plugin: one Executor interface, two implementations (exec a binary found on CNI_PATH,
 * or call a built-in plugin in-process with the same env/stdin semantics), and a default that
 * picks in-process only when the binary on CNI_PATH is one of ours (or absent), so a user who put
 * another plugin of that name on the path still gets that plugin.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, ErrorCode } from '../errors.js';
import { run } from '../exec.js';
import type { CniPlugin, PluginRegistry } from './plugin.js';
import { type EnvVars, handle } from './skel.js';
import type { CniCommand, CniResult } from './types.js';
import { latestVersion, parseResult } from './version.js';

export interface InvokeResponse {
  exitCode: number;
  stdout: string;
}

export interface Executor {
  /** Runs plugin `type` with `env` (CNI_COMMAND included) and `stdin`; never throws for a plugin error. */
  invoke(type: string, env: EnvVars, stdin: string): Promise<InvokeResponse>;
}

/** The marker the bundled multi-call binary carries in its first bytes (see scripts/build.mjs). */
export const builtinMarker = 'ctnet-cni-multicall';

export function findInPath(type: string, cniPath: readonly string[]): string | undefined {
  if (type.includes('/')) return undefined;
  for (const dir of cniPath) {
    const candidate = join(dir, type);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not in this directory */
    }
  }
  return undefined;
}

/** Our Node plugins carry the marker near the top, our shim binary (bin/cni/<type>) at its end. */
function isOurs(file: string): boolean {
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(256);
      const n = readSync(fd, buf, 0, buf.length, 0);
      if (buf.subarray(0, n).toString('latin1').includes(builtinMarker)) return true;
      const size = fstatSync(fd).size;
      const tail = readSync(fd, buf, 0, 64, Math.max(0, size - 64));
      return buf.subarray(0, tail).toString('latin1').includes(builtinMarker);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function pathOf(env: EnvVars): string[] {
  return (env.CNI_PATH ?? '').split(':').filter(Boolean);
}

export class ExecExecutor implements Executor {
  async invoke(type: string, env: EnvVars, stdin: string): Promise<InvokeResponse> {
    const file = findInPath(type, pathOf(env));
    if (!file) {
      throw new CtnetError(ErrorCode.invalidConfig, `failed to find plugin "${type}" in path [${pathOf(env).join(' ')}]`);
    }
    const childEnv: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(env)) if (v !== undefined) childEnv[k] = v;
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await run(file, [], { input: stdin, env: childEnv, allowFailure: true });
        // The child's stderr is its log; pass it on as the spec says delegates' stderr goes to ours.
        if (r.stderr) process.stderr.write(r.stderr);
        return { exitCode: r.code, stdout: r.stdout };
      } catch (err) {
        // libcni retries "text file busy" (a binary being replaced); so do we.
        if (attempt < 5 && /ETXTBSY/.test(String((err as Error).message))) continue;
        throw err;
      }
    }
  }
}

export class InProcessExecutor implements Executor {
  constructor(private readonly registry: PluginRegistry) {}

  has(type: string): boolean {
    return Object.hasOwn(this.registry, type);
  }

  async plugin(type: string): Promise<CniPlugin> {
    const load = this.registry[type];
    if (!load) throw new CtnetError(ErrorCode.invalidConfig, `no built-in plugin "${type}"`);
    return load();
  }

  async invoke(type: string, env: EnvVars, stdin: string): Promise<InvokeResponse> {
    const outcome = await handle(await this.plugin(type), env, stdin, this);
    if (outcome.stderr) process.stderr.write(outcome.stderr);
    return { exitCode: outcome.exitCode, stdout: outcome.stdout };
  }
}

export class DefaultExecutor implements Executor {
  private readonly inProcess: InProcessExecutor;
  private readonly exec = new ExecExecutor();

  constructor(registry: PluginRegistry) {
    this.inProcess = new InProcessExecutor(registry);
  }

  /** Which implementation a call of `type` with this CNI_PATH uses. */
  route(type: string, env: EnvVars): 'in-process' | 'exec' {
    const file = findInPath(type, pathOf(env));
    if (file) return isOurs(file) && this.inProcess.has(type) ? 'in-process' : 'exec';
    return this.inProcess.has(type) ? 'in-process' : 'exec';
  }

  invoke(type: string, env: EnvVars, stdin: string): Promise<InvokeResponse> {
    return this.route(type, env) === 'in-process' ? this.inProcess.invoke(type, env, stdin) : this.exec.invoke(type, env, stdin);
  }
}

/** Turns a plugin's error JSON (or garbage) into a CtnetError carrying the plugin's code. */
export function errorFromResponse(type: string, r: InvokeResponse): CtnetError {
  try {
    const e = JSON.parse(r.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === 'number' && typeof e.msg === 'string') {
      // Our plugins carry their hint in details as "…; hint: …" (skel): give it back its own field.
      const details = typeof e.details === 'string' ? e.details : undefined;
      const hint = details && /(?:^|; )hint: (.*)$/.exec(details);
      return new CtnetError(e.code, e.msg, {
        details: hint ? details.slice(0, hint.index) || undefined : details,
        hint: hint ? hint[1] : undefined,
      });
    }
  } catch {
    /* fall through */
  }
  const text = r.stdout.trim() || `exit code ${r.exitCode}`;
  return new CtnetError(ErrorCode.internal, `plugin ${type} failed: ${text}`);
}

/**
 * Delegates a command to plugin `type` (IPAM delegation, spec §4): same env with CNI_COMMAND
 * overridden, same stdin. Returns the parsed result for ADD.
 */
export async function delegate(
  executor: Executor,
  type: string,
  command: CniCommand,
  vars: EnvVars,
  stdin: string,
): Promise<CniResult | undefined> {
  const r = await executor.invoke(type, { ...vars, CNI_COMMAND: command }, stdin);
  if (r.exitCode !== 0) throw errorFromResponse(type, r);
  if (command !== 'ADD') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(r.stdout);
  } catch {
    throw new CtnetError(ErrorCode.decode, `plugin ${type} printed a result that is not JSON`);
  }
  return parseResult(raw, latestVersion);
}
