/**
 * host-local IPAM plugin: a drop-in for the reference plugin (same keys, same lease directory),
 * plus GC and STATUS. Runs as bin/cni/host-local and in-process when the bridge delegates to it
 * (then `conf` is the whole bridge netconf: the IPAM keys are under `conf.ipam`, `conf.name` is
 * the network). All the work is in ipam/; this file maps CNI commands onto it.
 */
import type { CniPlugin, CniResult, NetConf, PluginContext } from '../../core/index.js';
import {
  allocateLeases,
  checkAvailability,
  collectLeases,
  DiskLeaseStore,
  defaultDataDir,
  type IpamConfig,
  parseIpamConfig,
  readResolvConf,
  releaseLeases,
  requestedIps,
  toIpConfig,
  verifyLeases,
} from '../../ipam/index.js';
import { hostLocalConfig } from './schema.js';

/**
 * The lease directories of this process. A plugin process makes one call; the agent, which loads this module once,
 * keeps what it read between calls (ipam/store.ts says when that is safe).
 */
const store = new DiskLeaseStore();

/** One parse per call: skel's validate() and the handler see the same conf object. */
const parsed = new WeakMap<NetConf, IpamConfig>();
function configOf(conf: NetConf): IpamConfig {
  let cfg = parsed.get(conf);
  if (!cfg) {
    cfg = parseIpamConfig(conf);
    parsed.set(conf, cfg);
  }
  return cfg;
}

/**
 * Where DEL releases: the lease directory of the network. A config ADD would refuse (bad ranges) still names it,
 * so the attachment's leases are freed anyway.
 */
function leaseDirOf(ctx: PluginContext): Pick<IpamConfig, 'dataDir' | 'network'> {
  if (!ctx.configProblems) return configOf(ctx.conf);
  const dataDir = ctx.conf.ipam?.dataDir;
  return { network: ctx.conf.name, dataDir: typeof dataDir === 'string' && dataDir ? dataDir : defaultDataDir };
}

function attachment(ctx: PluginContext) {
  return { containerId: ctx.env.containerId, ifname: ctx.env.ifname };
}

export const hostLocalPlugin: CniPlugin = {
  name: 'host-local',
  config: hostLocalConfig,

  validate(conf) {
    configOf(conf);
  },

  async add(ctx) {
    const cfg = configOf(ctx.conf);
    // Everything that can fail on input is done before the lock is taken.
    const requested = requestedIps(cfg, ctx.conf, ctx.env.args);
    const dns = cfg.resolvConf ? readResolvConf(cfg.resolvConf) : undefined;
    const allocations = await allocateLeases(store, cfg, attachment(ctx), requested);
    const result: CniResult = { cniVersion: ctx.conf.cniVersion, ips: allocations.map(toIpConfig) };
    if (cfg.routes.length) result.routes = cfg.routes.map((r) => ({ ...r }));
    if (dns && Object.keys(dns).length) result.dns = dns;
    ctx.log.debug({ ips: result.ips }, 'allocated');
    return result;
  },

  async del(ctx) {
    const released = await releaseLeases(store, leaseDirOf(ctx), attachment(ctx));
    ctx.log.debug({ released }, 'released');
  },

  async check(ctx) {
    await verifyLeases(store, configOf(ctx.conf), attachment(ctx), ctx.prevResult?.ips ?? []);
  },

  async gc(ctx) {
    await collectLeases(store, configOf(ctx.conf), ctx.validAttachments);
  },

  async status(ctx) {
    checkAvailability(store, configOf(ctx.conf));
  },
};
