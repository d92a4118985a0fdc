import type { Logger } from '../log.js';
import type { Decoder } from './decode.js';
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
  /**
   * DEL only: why the config would fail ADD's decoding or validation. DEL still runs then, on what
   * could be decoded, and removes everything it can identify from the container ID, the ifname and
   * the network name.
   */
  configProblems?: string[];
}

export interface GcContext<C extends NetConf = NetConf> extends PluginContext<C> {
  validAttachments: CniAttachment[];
}

/** What a plugin hands to skel. Missing check/gc/status handlers succeed (as the Go skel does). */
export interface CniPlugin<C extends NetConf = NetConf> {
  name: string;
  /**
   * The plugin's config declaration (decode.ts): decoded before any handler runs; `C` is derived
   * from it. Without one, only the keys every netconf has are decoded.
   */
  config?: Decoder<unknown>;
  /** Semantic checks the schema cannot express (CIDRs, ranges); throws code 7. */
  validate?(conf: C, env: CniEnv): void;
  add(ctx: PluginContext<C>): Promise<CniResult>;
  del(ctx: PluginContext<C>): Promise<void>;
  check?(ctx: PluginContext<C>): Promise<void>;
  gc?(ctx: GcContext<C>): Promise<void>;
  status?(ctx: PluginContext<C>): Promise<void>;
}

export type PluginRegistry = Readonly<Record<string, () => Promise<CniPlugin<NetConf>>>>;
