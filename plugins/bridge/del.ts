/**
 * Bridge DEL: best effort and idempotent. Every step runs even when an earlier one fails, and
 * none needs the container's namespace: IPAM releases by (container, ifname) and the masquerade
 * chains are named from (network, container, ifname), so a DEL with an empty or vanished netns
 * still frees the lease and the rules (the reference leaks the rules there: cni-user-issues #3).
 */
import { delegate, ErrorCollector, type PluginContext } from '../../core/index.js';
import { openFirewall } from '../../iptables/index.js';
import { deleteLinkOffThread, isNetns } from '../../netns/index.js';
import { type BridgeNetConf, type BridgeSettings, bridgeSettings } from './config.js';

/**
 * DEL's view of the config. One that ADD would refuse still names the network, the bridge and the IPAM plugin;
 * whether it masqueraded is then unknown, so its masquerade rules (found by name) are removed in any case.
 */
function settingsForDel(ctx: PluginContext<BridgeNetConf>): BridgeSettings {
  if (!ctx.configProblems) return bridgeSettings(ctx.conf);
  const { cniVersion, name, type, bridge, ipam, ipMasqBackend } = ctx.conf;
  return bridgeSettings({ cniVersion, name, type, bridge, ipam, ipMasqBackend, ipMasq: true });
}

export async function delBridge(ctx: PluginContext<BridgeNetConf>): Promise<void> {
  const { env } = ctx;
  const s = settingsForDel(ctx);
  const failures = new ErrorCollector();
  const attempt = (what: string, fn: () => Promise<unknown>) => failures.attempt(what, fn);
  // The link goes while the addresses go. Deleting a veth ends with the kernel waiting for RCU (tens of ms):
  // deleteLinkOffThread returns once both ends are gone, before that wait, and the other steps go on meanwhile.
  const steps: Promise<void>[] = [];
  const ipamType = s.ipamType;
  steps.push(
    (async () => {
      // The masquerade goes before the addresses are released: its elements are keyed by the address, and an ADD
      // that received the address meanwhile would take them over, then this DEL (which found them as its own)
      // would delete the new owner's. ADD makes them in the reverse order.
      if (s.ipMasq) {
        // prevResult's addresses only spare the firewall a read; without them it finds its rules by name.
        const known = ctx.prevResult?.ips?.map((ip) => ip.address);
        await attempt('remove masquerade rules', async () => {
          const firewall = await openFirewall(s.ipMasqBackend);
          const key = { network: s.network, containerId: env.containerId, ifname: env.ifname };
          await firewall.teardownMasquerade(key, known, s.bridge);
        });
      }
      if (ipamType) {
        await attempt(`release addresses through ${ipamType}`, () =>
          delegate(ctx.executor, ipamType, 'DEL', ctx.vars, ctx.stdin),
        );
      }
    })(),
  );
  if (env.netns && isNetns(env.netns)) {
    // Deleting the container end deletes the host end with it.
    steps.push(attempt(`delete ${env.ifname} in ${env.netns}`, () => deleteLinkOffThread(env.netns, env.ifname)));
  }
  await Promise.all(steps);
  failures.throwIfAny(`delete attachment ${env.ifname} of ${env.containerId}`);
}
