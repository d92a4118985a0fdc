/** The bridge plugin: a docker0-style bridge, veth pairs, gateway and NAT (cni-spec §B1, §C). */
import { type CniPlugin, delegate, ErrorCollector, type GcContext, type PluginContext } from '../../core/index.js';
import { openFirewall } from '../../iptables/index.js';
import { addBridge } from './add.js';
import { checkBridge } from './check.js';
import { type BridgeNetConf, bridgeSettings, validateBridgeConf } from './config.js';
import { delBridge } from './del.js';
import { bridgeConfig } from './schema.js';

/** GC: the IPAM's leases and our masquerade chains of attachments that are no longer valid. */
async function gcBridge(ctx: GcContext<BridgeNetConf>): Promise<void> {
  const s = bridgeSettings(ctx.conf);
  const failures = new ErrorCollector();
  // Masquerade first: its elements are keyed by the addresses the IPAM's collection releases (see del.ts).
  // Chains are collected even when ipMasq is now off: it may have been on when they were made.
  try {
    const firewall = await openFirewall(s.ipMasqBackend);
    await firewall.gcMasquerade(
      s.network,
      ctx.validAttachments.map((a) => ({ network: s.network, containerId: a.containerID, ifname: a.ifname })),
    );
  } catch (err) {
    if (s.ipMasq) failures.add(err, 'collect masquerade rules');
  }
  const ipamType = s.ipamType;
  if (ipamType)
    await failures.attempt(`collect garbage through ${ipamType}`, () =>
      delegate(ctx.executor, ipamType, 'GC', ctx.vars, ctx.stdin),
    );
  failures.throwIfAny('collect garbage');
}

async function statusBridge(ctx: PluginContext<BridgeNetConf>): Promise<void> {
  const s = bridgeSettings(ctx.conf);
  if (s.ipamType) await delegate(ctx.executor, s.ipamType, 'STATUS', ctx.vars, ctx.stdin);
}

export const bridgePlugin: CniPlugin<BridgeNetConf> = {
  name: 'bridge',
  config: bridgeConfig,
  validate: validateBridgeConf,
  add: addBridge,
  del: delBridge,
  check: checkBridge,
  gc: gcBridge,
  status: statusBridge,
};
