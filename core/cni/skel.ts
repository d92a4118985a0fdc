/**
 * The plugin skeleton: parse env and stdin, validate, dispatch, print the result or the error.
 * `handle` is pure (env and stdin in, exit code and stdout out) so the in-process executor gives
 * exactly the semantics of executing the binary.
 */
import { statfsSync, statSync } from 'node:fs';
import { asCtnetError, CtnetError, ErrorCode } from '../errors.js';
import { log } from '../log.js';
import { parseCniArgs } from './args.js';
import type { Decoder } from './decode.js';
import type { Executor } from './invoke.js';
import { validateContainerId, validateIfname, validateNetworkName } from './names.js';
import { netConfFields } from './netconf.js';
import type { CniPlugin, GcContext, PluginContext } from './plugin.js';
import { type CniAttachment, type CniCommand, CniCommands, type CniEnv, type CniResult, type NetConf } from './types.js';
import {
  compareVersions,
  formatResult,
  latestVersion,
  parseResult,
  requireSupportedVersion,
  supportedVersions,
} from './version.js';

export type EnvVars = Readonly<Record<string, string | undefined>>;

export interface HandleOutcome {
  exitCode: number;
  stdout: string;
  stderr?: string;
}

const NSFS_MAGIC = 0x6e736673;

export function errorJson(err: unknown, version: string = latestVersion): string {
  const e = asCtnetError(err);
  const details = [e.details, e.hint ? `hint: ${e.hint}` : undefined].filter(Boolean).join('; ');
  const out: Record<string, unknown> = { cniVersion: version, code: e.code, msg: e.message };
  if (details) out.details = details;
  return `${JSON.stringify(out)}\n`;
}

function requireEnv(vars: EnvVars, command: CniCommand): CniEnv {
  const needs: Record<CniCommand, string[]> = {
    ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
    CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
    DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
    GC: [],
    STATUS: [],
    VERSION: [],
  };
  const missing = needs[command].filter((k) => !vars[k]);
  if (missing.length) {
    throw new CtnetError(ErrorCode.invalidEnv, `required environment variables missing: ${missing.join(', ')}`);
  }
  const env: CniEnv = {
    command,
    containerId: vars.CNI_CONTAINERID ?? '',
    netns: vars.CNI_NETNS ?? '',
    ifname: vars.CNI_IFNAME ?? '',
    args: vars.CNI_ARGS ?? '',
    path: (vars.CNI_PATH ?? '').split(':').filter(Boolean),
  };
  if (command === 'ADD' || command === 'CHECK' || command === 'DEL') {
    validateContainerId(env.containerId);
    validateIfname(env.ifname);
  }
  // Malformed CNI_ARGS (";;", "a=b=c", a key set twice) is refused whichever plugin reads it; DEL still cleans up.
  if (command === 'ADD' || command === 'CHECK') parseCniArgs(env.args);
  return env;
}

/**
 * ADD and CHECK need a real network namespace, and never the plugin's own (cni-user-issues #15).
 * DEL tolerates a path that is gone or no longer a namespace (the container died first), but
 * still refuses the plugin's own namespace.
 */
function checkNetns(path: string, vars: EnvVars, command: CniCommand): void {
  const lenient = command === 'DEL';
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (cause) {
    if (lenient) return;
    throw new CtnetError(ErrorCode.invalidEnv, `invalid CNI_NETNS "${path}": it does not exist`, { cause });
  }
  if (statfsSync(path).type !== NSFS_MAGIC) {
    if (lenient) return;
    throw new CtnetError(ErrorCode.invalidEnv, `invalid CNI_NETNS "${path}": not a network namespace`);
  }
  const own = statSync('/proc/self/ns/net');
  const override = /^(1|true)$/i.test(vars.CNI_NETNS_OVERRIDE ?? '');
  if (st.ino === own.ino && st.dev === own.dev && !override) {
    throw new CtnetError(ErrorCode.invalidNetns, `CNI_NETNS "${path}" is the plugin's own network namespace`, {
      hint: 'set CNI_NETNS_OVERRIDE=1 if this is intended',
    });
  }
}

function parseJson(stdin: string): Record<string, unknown> {
  let conf: unknown;
  try {
    conf = JSON.parse(stdin);
  } catch (cause) {
    throw new CtnetError(ErrorCode.decode, `failed to parse network config: ${(cause as Error).message}`, { cause });
  }
  if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) {
    throw new CtnetError(ErrorCode.decode, 'failed to parse network config: not a JSON object');
  }
  return conf as Record<string, unknown>;
}

/**
 * Decodes the config with the plugin's declaration. For DEL, a config that does not decode or
 * validate is decoded as far as it goes and the problems are handed to the plugin (DEL must still
 * clean up what it can identify; spec §DEL).
 */
function decodeConf(
  plugin: CniPlugin,
  input: Record<string, unknown>,
  env: CniEnv,
): { conf: NetConf; problems: string[] | undefined } {
  const declaration = (plugin.config ?? netConfFields) as Decoder<NetConf>;
  try {
    const conf = declaration.decode(input, '') as NetConf;
    plugin.validate?.(conf, env);
    return { conf, problems: undefined };
  } catch (err) {
    if (env.command !== 'DEL' || !(err instanceof CtnetError) || err.code !== ErrorCode.invalidConfig) throw err;
    const problems: string[] = [];
    const conf = declaration.decode(input, '', problems) as NetConf;
    try {
      plugin.validate?.(conf, env);
    } catch (e) {
      problems.push((e as Error).message);
    }
    if (!problems.length) problems.push(err.message);
    return { conf, problems };
  }
}

function versionReply(stdin: string): string {
  let asked: unknown;
  try {
    asked = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
  } catch {
    asked = undefined;
  }
  const cniVersion =
    typeof asked === 'string' && (supportedVersions as readonly string[]).includes(asked) ? asked : latestVersion;
  return `${JSON.stringify({ cniVersion, supportedVersions })}\n`;
}

function validAttachments(conf: NetConf): CniAttachment[] {
  const lists = [conf['cni.dev/valid-attachments'], conf['cni.dev/attachments']];
  const out: CniAttachment[] = [];
  for (const list of lists) {
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      throw new CtnetError(ErrorCode.invalidConfig, 'invalid network config: "cni.dev/valid-attachments" must be a list');
    }
    for (const a of list) {
      if (typeof a?.containerID !== 'string' || typeof a?.ifname !== 'string') {
        throw new CtnetError(ErrorCode.invalidConfig, 'invalid network config: an attachment needs containerID and ifname');
      }
      out.push({ containerID: a.containerID, ifname: a.ifname });
    }
  }
  return out;
}

/** The previous result; for DEL one that does not parse is a problem to report, not a reason to keep state. */
function readPrevResult(conf: NetConf, version: string, problems: string[] | undefined): CniResult | undefined {
  if (conf.prevResult === undefined) return undefined;
  try {
    return parseResult(conf.prevResult, version);
  } catch (err) {
    if (!problems) throw err;
    problems.push((err as Error).message);
    return undefined;
  }
}

async function dispatch(plugin: CniPlugin, vars: EnvVars, stdin: string, executor: Executor): Promise<string> {
  const commandText = vars.CNI_COMMAND ?? '';
  if (!(CniCommands as readonly string[]).includes(commandText)) {
    throw new CtnetError(ErrorCode.invalidEnv, `unknown CNI_COMMAND "${commandText}"`);
  }
  const command = commandText as CniCommand;
  if (command === 'VERSION') return versionReply(stdin);

  const input = parseJson(stdin);
  // The keys every plugin needs first, read as far as they decode; the plugin's decoding follows.
  const head = netConfFields.decode(input, '', []) as NetConf;
  const version = requireSupportedVersion(head.cniVersion);
  validateNetworkName(head.name);
  const env = requireEnv(vars, command);
  if (command === 'CHECK' && compareVersions(version, '0.4.0') < 0) {
    throw new CtnetError(ErrorCode.incompatibleVersion, `config version "${version}" does not allow CHECK`);
  }
  if ((command === 'GC' || command === 'STATUS') && compareVersions(version, '1.1.0') < 0) {
    throw new CtnetError(ErrorCode.incompatibleVersion, `config version "${version}" does not allow ${command}`);
  }
  if (command === 'ADD' || command === 'CHECK' || (command === 'DEL' && env.netns)) checkNetns(env.netns, vars, command);

  const decoded = decodeConf(plugin, input, env);
  const { conf } = decoded;
  const problems = command === 'DEL' ? (decoded.problems ?? []) : undefined;
  const prevResult = readPrevResult(conf, version, problems);
  const ctx: PluginContext = {
    ...(problems?.length && { configProblems: problems }),
    env,
    conf,
    prevResult,
    stdin,
    vars,
    executor,
    log: log.child({ plugin: plugin.name, cmd: command, id: env.containerId || undefined }),
  };
  switch (command) {
    case 'ADD': {
      const result = await plugin.add(ctx);
      return `${JSON.stringify(formatResult(result, version))}\n`;
    }
    case 'DEL':
      await plugin.del(ctx);
      return '';
    case 'CHECK':
      await plugin.check?.(ctx);
      return '';
    case 'STATUS':
      await plugin.status?.(ctx);
      return '';
    case 'GC': {
      const gcCtx: GcContext = { ...ctx, validAttachments: validAttachments(conf) };
      await plugin.gc?.(gcCtx);
      return '';
    }
  }
}

function requestedVersion(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' && (supportedVersions as readonly string[]).includes(v) ? v : latestVersion;
  } catch {
    return latestVersion;
  }
}

export async function handle(plugin: CniPlugin, vars: EnvVars, stdin: string, executor: Executor): Promise<HandleOutcome> {
  if (!vars.CNI_COMMAND) {
    return {
      exitCode: 0,
      stdout: '',
      stderr: `CNI ${plugin.name} plugin (ctnet), supports CNI ${supportedVersions.join(', ')}\n`,
    };
  }
  try {
    return { exitCode: 0, stdout: await dispatch(plugin, vars, stdin, executor) };
  } catch (err) {
    const code = err instanceof CtnetError ? err.code : ErrorCode.internal;
    const level = code === ErrorCode.internal ? 'error' : 'info';
    log[level]({ err, plugin: plugin.name, cmd: vars.CNI_COMMAND, id: vars.CNI_CONTAINERID }, 'plugin call failed');
    return { exitCode: 1, stdout: errorJson(err, requestedVersion(stdin)) };
  }
}
