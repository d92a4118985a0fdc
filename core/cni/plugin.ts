import type { Logger } from '../log.js';
import type { Executor } from './invoke.js';
import type { CniAttachment, CniEnv, CniResult, NetConf } from './types.js';

export interface PluginContext<C extends NetConf = NetConf> {
  env: CniEnv;
  conf: C;
  /** prevResult parsed into the internal shape, when the runtime sent one. */
  prevResult: CniResult | undefined;
  /** The raw stdin and environment, passed unchanged to delegated plugins (IPAM). */
  stdin: string;
  vars: Readonly<Record<string, string | undefined>>;
  executor: Executor;
  log: Logger;
}

export interface GcContext<C extends NetConf = NetConf> extends PluginContext<C> {
  validAttachments: CniAttachment[];
}

/** What a plugin hands to skel. Missing check/gc/status handlers succeed (as the Go skel does). */
export interface CniPlugin<C extends NetConf = NetConf> {
  name: string;
  /** JSON schema for the plugin's own config; validated before any handler runs. */
  schema?: object;
  /** Semantic checks the schema cannot express (CIDRs, ranges); throws code 7. */
  validate?(conf: C, env: CniEnv): void;
  add(ctx: PluginContext<C>): Promise<CniResult>;
  del(ctx: PluginContext<C>): Promise<void>;
  check?(ctx: PluginContext<C>): Promise<void>;
  gc?(ctx: GcContext<C>): Promise<void>;
  status?(ctx: PluginContext<C>): Promise<void>;
}

export type PluginRegistry = Readonly<Record<string, () => Promise<CniPlugin<NetConf>>>>;
