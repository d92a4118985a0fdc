/**
 * ctnet's one CNI runtime (libcni's job), used by the runner and by `debug cni` / `network connect`: runs a
 * network config list through an Executor as the spec says a runtime must (ADD in order with prevResult
 * chaining, DEL in reverse with the final result, CHECK, GC with cni.dev/valid-attachments, STATUS).
 * `addList` / `delList` / `checkList` leave keeping the result to the caller (the runner keeps it in its
 * record); `add` / `del` / `check` keep it in libcni's on-disk cache format so a later DEL or CHECK finds it.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  asCtnetError,
  type CniAttachment,
  type CniCommand,
  type CniResult,
  CtnetError,
  CtnetErrorList,
  compareVersions,
  ErrorCode,
  ErrorCollector,
  type Executor,
  errorFromResponse,
  formatResult,
  type NetConf,
  parseCniArgs,
  parseResult,
  wrapError,
} from '../core/index.js';
import { type LoadedNetwork, negotiatedVersion, parseNetworkConfig } from './conflist.js';

export interface RuntimeConf {
  containerId: string;
  /** Network namespace path; may be empty for DEL (the spec's "clean up what you can"). */
  netns: string;
  ifname: string;
  /** CNI_ARGS text, `K=V;K=V`. */
  args?: string;
  /** Capability arguments, e.g. `{ portMappings: [...] }`, handed to plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

/** One cached attachment, libcni's `cniCacheV1` shape (Config is base64 as Go marshals []byte). */
export interface CachedAttachment {
  kind: 'cniCacheV1';
  containerId: string;
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
  /** ctnet's addition (ignored by libcni): the CNI_PATH the ADD ran with, so a later DEL finds the same plugins. */
  cniPath?: string[];
}

export interface GcOutcome {
  /** Cached attachments that were not valid and got a DEL. */
  deleted: CniAttachment[];
  /** Errors met on the way; GC carries on through all of them (spec). */
  errors: CtnetError[];
}

const cleanupFailures = new WeakMap<object, unknown>();

/** True when a failed `addList(…, { undo: true })` could not undo itself (its DEL failed too): a DEL is still owed. */
export function cleanupFailed(err: unknown): boolean {
  return typeof err === 'object' && err !== null && cleanupFailures.has(err);
}

export class CniRuntime {
  constructor(
    private readonly executor: Executor,
    private readonly cacheDir: string,
    /** CNI_PATH handed to plugins. */
    private readonly cniPath: readonly string[],
    /** Extra environment for plugins (PATH for iptables, log settings). */
    private readonly baseEnv: NodeJS.ProcessEnv = process.env,
  ) {}

  /**
   * ADD through the list in order, chaining prevResult; nothing is cached (the caller keeps the result, as the
   * runner does in its record). With `undo`, a failed ADD is followed by a DEL of the whole list with what the
   * chain produced so far, and the ADD error surfaces; `cleanupFailed(err)` then says whether that DEL failed
   * too, so a DEL is still owed.
   */
  async addList(net: LoadedNetwork, rt: RuntimeConf, opts: { undo?: boolean } = {}): Promise<Record<string, unknown>> {
    const version = negotiatedVersion(net.list);
    let prev: CniResult | undefined;
    try {
      for (const plugin of net.list.plugins) {
        const conf = buildPluginConfig(plugin, net.list.name, version, rt.capabilityArgs, prev);
        prev = await this.call(plugin.type, 'ADD', conf, rt, version);
      }
    } catch (err) {
      if (!opts.undo) throw err;
      try {
        await this.delList(net, rt, prev ? formatResult(prev, version) : undefined);
      } catch (delErr) {
        // The ADD error is the one worth telling; cleanupFailed() tells the caller a DEL is still owed.
        if (typeof err === 'object' && err !== null) cleanupFailures.set(err, delErr);
      }
      throw err;
    }
    return formatResult(prev ?? { cniVersion: version }, version);
  }

  /**
   * DEL through the list in reverse with the attachment's final result (when there is one); every plugin runs
   * even when one fails, and all failures are reported together with their codes.
   */
  async delList(net: LoadedNetwork, rt: RuntimeConf, result: Record<string, unknown> | undefined): Promise<void> {
    const version = negotiatedVersion(net.list);
    const prev = result && compareVersions(version, '0.4.0') >= 0 ? parseResult(result, version) : undefined;
    const failures = new ErrorCollector();
    for (const plugin of [...net.list.plugins].reverse()) {
      const conf = buildPluginConfig(plugin, net.list.name, version, rt.capabilityArgs, prev);
      await failures.attempt(undefined, () => this.call(plugin.type, 'DEL', conf, rt, version));
    }
    if (failures.failed) {
      throw new CtnetErrorList(`detach ${rt.containerId.slice(0, 12)} from network "${net.list.name}"`, failures.errors);
    }
  }

  /** CHECK through the list in order with the attachment's result; a list without CHECK (before 0.4.0, disableCheck) passes. */
  async checkList(net: LoadedNetwork, rt: RuntimeConf, result: Record<string, unknown>): Promise<void> {
    const version = negotiatedVersion(net.list);
    if (compareVersions(version, '0.4.0') < 0 || net.list.disableCheck) return;
    const prev = parseResult(result, version);
    for (const plugin of net.list.plugins) {
      await this.call(
        plugin.type,
        'CHECK',
        buildPluginConfig(plugin, net.list.name, version, rt.capabilityArgs, prev),
        rt,
        version,
      );
    }
  }

  /** libcni's AddNetworkList: ADD through the list, then cache the result for DEL and CHECK. */
  async add(net: LoadedNetwork, rt: RuntimeConf): Promise<Record<string, unknown>> {
    const result = await this.addList(net, rt);
    this.writeCache(net, rt, result);
    return result;
  }

  /** libcni's DelNetworkList: DEL with the cached result and the mappings ADD was given; the cache entry goes once DEL succeeds. */
  async del(net: LoadedNetwork, rt: RuntimeConf): Promise<void> {
    const cached = this.readCache(net.list.name, rt.containerId, rt.ifname);
    // A DEL without the mappings would leave portmap's rules behind: reuse what ADD was given.
    const capabilityArgs = rt.capabilityArgs ?? cached?.capabilityArgs;
    await this.delList(net, { ...rt, capabilityArgs }, cached?.result);
    this.removeCache(net.list.name, rt.containerId, rt.ifname);
  }

  async check(net: LoadedNetwork, rt: RuntimeConf): Promise<void> {
    const version = negotiatedVersion(net.list);
    if (compareVersions(version, '0.4.0') < 0) {
      throw new CtnetError(
        ErrorCode.incompatibleVersion,
        `network "${net.list.name}" has version ${version}, which has no CHECK`,
      );
    }
    if (net.list.disableCheck) return;
    const cached = this.readCache(net.list.name, rt.containerId, rt.ifname);
    if (!cached?.result) {
      throw new CtnetError(
        ErrorCode.unknownContainer,
        `failed to check network "${net.list.name}": no cached ADD result for ${rt.containerId}/${rt.ifname}`,
        { hint: `CHECK needs the result of an ADD made through ctnet (cache: ${this.cacheDir})` },
      );
    }
    await this.checkList(net, { ...rt, capabilityArgs: rt.capabilityArgs ?? cached.capabilityArgs }, cached.result);
  }

  /**
   * libcni's GCNetworkList: DEL every cached attachment of this network that is not valid, then
   * GC to each plugin with the valid list (under both keys, see cni-user-issues #14).
   */
  async gc(net: LoadedNetwork, valid: readonly CniAttachment[]): Promise<GcOutcome> {
    const version = negotiatedVersion(net.list);
    const outcome: GcOutcome = { deleted: [], errors: [] };
    const isValid = (a: CniAttachment) => valid.some((v) => v.containerID === a.containerID && v.ifname === a.ifname);
    for (const cached of this.cachedAttachments(net.list.name)) {
      const attachment = { containerID: cached.containerId, ifname: cached.ifName };
      if (isValid(attachment)) continue;
      try {
        // DEL with the config the attachment was made with, as libcni does.
        const config = Buffer.from(cached.config, 'base64').toString('utf8');
        const list = config ? parseNetworkConfig(config, `cache of ${cached.containerId}`) : net.list;
        await this.del(
          { list, file: '', raw: config },
          {
            containerId: cached.containerId,
            ifname: cached.ifName,
            netns: cached.netns ?? '',
            args: (cached.cniArgs ?? []).map(([k, v]) => `${k}=${v}`).join(';'),
            capabilityArgs: cached.capabilityArgs,
          },
        );
        outcome.deleted.push(attachment);
      } catch (err) {
        outcome.errors.push(asCtnetError(err));
      }
    }
    if (net.list.disableGC || compareVersions(version, '1.1.0') < 0) return outcome;
    const list = valid.map((v) => ({ containerID: v.containerID, ifname: v.ifname }));
    for (const plugin of net.list.plugins) {
      const conf: NetConf = {
        ...plugin,
        name: net.list.name,
        cniVersion: version,
        'cni.dev/valid-attachments': list,
        'cni.dev/attachments': list,
      };
      try {
        await this.call(plugin.type, 'GC', conf, undefined, version);
      } catch (err) {
        outcome.errors.push(asCtnetError(err));
      }
    }
    return outcome;
  }

  async status(net: LoadedNetwork): Promise<void> {
    const version = negotiatedVersion(net.list);
    if (compareVersions(version, '1.1.0') < 0) {
      throw new CtnetError(
        ErrorCode.incompatibleVersion,
        `network "${net.list.name}" has version ${version}, which has no STATUS`,
      );
    }
    for (const plugin of net.list.plugins) {
      await this.call(plugin.type, 'STATUS', { ...plugin, name: net.list.name, cniVersion: version }, undefined, version);
    }
  }

  /** Every cached attachment (of one network when `network` is given). */
  cachedAttachments(network?: string): CachedAttachment[] {
    let names: string[];
    try {
      names = readdirSync(this.cacheDir);
    } catch {
      return [];
    }
    const out: CachedAttachment[] = [];
    for (const name of names) {
      if (name.startsWith('.')) continue;
      try {
        const c = JSON.parse(readFileSync(join(this.cacheDir, name), 'utf8')) as CachedAttachment;
        if (c.kind === 'cniCacheV1' && (network === undefined || c.networkName === network)) out.push(c);
      } catch {
        /* a foreign or half-written file is not ours to judge here */
      }
    }
    return out;
  }

  readCache(network: string, containerId: string, ifname: string): CachedAttachment | undefined {
    try {
      return JSON.parse(readFileSync(this.cacheFile(network, containerId, ifname), 'utf8')) as CachedAttachment;
    } catch {
      return undefined;
    }
  }

  private cacheFile(network: string, containerId: string, ifname: string): string {
    return join(this.cacheDir, `${network}-${containerId}-${ifname}`);
  }

  private writeCache(net: LoadedNetwork, rt: RuntimeConf, result: Record<string, unknown>): void {
    const entry: CachedAttachment = {
      kind: 'cniCacheV1',
      containerId: rt.containerId,
      config: Buffer.from(net.raw, 'utf8').toString('base64'),
      ifName: rt.ifname,
      networkName: net.list.name,
      netns: rt.netns || undefined,
      cniArgs: rt.args ? [...parseCniArgs(rt.args)] : undefined,
      capabilityArgs: rt.capabilityArgs,
      result,
      cniPath: [...this.cniPath],
    };
    const file = this.cacheFile(net.list.name, rt.containerId, rt.ifname);
    try {
      mkdirSync(this.cacheDir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
      renameSync(tmp, file);
    } catch (cause) {
      throw wrapError(`write the result cache ${file}`, cause, ErrorCode.io);
    }
  }

  private removeCache(network: string, containerId: string, ifname: string): void {
    rmSync(this.cacheFile(network, containerId, ifname), { force: true });
  }

  private call(
    type: string,
    command: CniCommand,
    conf: NetConf,
    rt: RuntimeConf | undefined,
    version: string,
  ): Promise<CniResult | undefined> {
    return invokeListPlugin(this.executor, command, { ...conf, type }, rt, {
      cniPath: this.cniPath,
      baseEnv: this.baseEnv,
      version,
    });
  }
}

/**
 * One plugin of a network list, as a runtime calls it (spec §A): the CNI_* environment on top of
 * `baseEnv`, the request on stdin, then the error or (ADD) the result read back.
 */
async function invokeListPlugin(
  executor: Executor,
  command: CniCommand,
  conf: NetConf,
  rt: RuntimeConf | undefined,
  opts: { cniPath: readonly string[]; baseEnv: NodeJS.ProcessEnv; version: string },
): Promise<CniResult | undefined> {
  const type = String(conf.type);
  const env: Record<string, string | undefined> = {
    ...opts.baseEnv,
    CNI_COMMAND: command,
    CNI_PATH: opts.cniPath.join(':'),
    CNI_CONTAINERID: rt?.containerId,
    CNI_NETNS: rt?.netns,
    CNI_IFNAME: rt?.ifname,
    CNI_ARGS: rt?.args,
  };
  const what = `run ${type} ${command} on network "${conf.name}"`;
  let response: Awaited<ReturnType<Executor['invoke']>>;
  try {
    response = await executor.invoke(type, env, JSON.stringify(conf));
  } catch (cause) {
    throw wrapError(what, cause);
  }
  if (response.exitCode !== 0) throw wrapError(what, errorFromResponse(type, response));
  if (command !== 'ADD') return undefined;
  try {
    return parseResult(JSON.parse(response.stdout), opts.version);
  } catch (cause) {
    throw wrapError(`${what}: the plugin printed no valid result`, cause, ErrorCode.decode);
  }
}

/** The per-plugin request config (spec A5): name and version injected, runtimeConfig, prevResult. */
export function buildPluginConfig(
  plugin: NetConf,
  name: string,
  version: string,
  capabilityArgs: Record<string, unknown> | undefined,
  prev: CniResult | undefined,
): NetConf {
  const conf: NetConf = { ...plugin, name, cniVersion: version };
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, enabled] of Object.entries(plugin.capabilities ?? {})) {
    if (enabled && capabilityArgs && Object.hasOwn(capabilityArgs, cap)) runtimeConfig[cap] = capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  else delete conf.runtimeConfig;
  if (prev) conf.prevResult = formatResult(prev, version);
  else delete conf.prevResult;
  return conf;
}
