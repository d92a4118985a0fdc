/** Bridge CHECK: what ADD made and listed in its result is still there (spec §CHECK). */
import { type CniInterface, type CniResult, CtnetError, delegate, ErrorCode, type PluginContext } from '../../core/index.js';
import { openFirewall } from '../../iptables/index.js';
import { withNetlink } from '../../netns/index.js';
import { canonical } from './addressing.js';
import { type BridgeNetConf, bridgeSettings } from './config.js';

function checkFailed(what: string): CtnetError {
  return new CtnetError(ErrorCode.internal, `CHECK failed: ${what}`);
}

function sameMac(a: string | undefined, b: string | undefined): boolean {
  return !a || !b || a.toLowerCase() === b.toLowerCase();
}

export async function checkBridge(ctx: PluginContext<BridgeNetConf>): Promise<void> {
  const { env, conf } = ctx;
  const s = bridgeSettings(conf);
  const prev: CniResult | undefined = ctx.prevResult;
  if (!prev) throw new CtnetError(ErrorCode.invalidConfig, 'CHECK needs the ADD result as "prevResult"');
  if (s.ipamType) await delegate(ctx.executor, s.ipamType, 'CHECK', ctx.vars, ctx.stdin);

  const interfaces = prev.interfaces ?? [];
  const containerIndex = interfaces.findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  if (containerIndex < 0) throw checkFailed(`prevResult lists no interface "${env.ifname}" in ${env.netns}`);
  const containerIface = interfaces[containerIndex] as CniInterface;
  const hostIface = interfaces.find((i) => !i.sandbox && i.name !== s.bridge);

  const bridgeIndex = await withNetlink(undefined, async (nl) => {
    const br = await nl.getLink(s.bridge);
    if (br?.kind !== 'bridge') throw checkFailed(`bridge "${s.bridge}" does not exist`);
    const brInResult = interfaces.find((i) => i.name === s.bridge);
    if (!sameMac(brInResult?.mac, br.mac)) throw checkFailed(`bridge "${s.bridge}" has MAC ${br.mac}, not ${brInResult?.mac}`);
    if (s.promiscMode && !br.promisc) throw checkFailed(`bridge "${s.bridge}" is not in promiscuous mode`);
    return br.index;
  });

  const peerIndex = await withNetlink(env.netns, async (nl) => {
    const link = await nl.getLink(env.ifname);
    if (!link) throw checkFailed(`interface "${env.ifname}" does not exist in ${env.netns}`);
    if (!sameMac(containerIface.mac, link.mac))
      throw checkFailed(`"${env.ifname}" has MAC ${link.mac}, not ${containerIface.mac}`);
    const have = new Set((await nl.listAddresses(env.ifname)).map((a) => `${canonical(a.address)}/${a.prefixLen}`));
    for (const ip of prev.ips ?? []) {
      if (ip.interface !== undefined && ip.interface !== containerIndex) continue;
      const [addr, len] = ip.address.split('/');
      if (!have.has(`${canonical(addr ?? '')}/${len}`)) throw checkFailed(`address ${ip.address} is missing on "${env.ifname}"`);
    }
    const routes = [...(await nl.listRoutes(4)), ...(await nl.listRoutes(6))];
    for (const r of prev.routes ?? []) {
      const dst = r.dst;
      const found = routes.some((x) => x.dst === dst && (!r.gw || (x.gw && canonical(x.gw) === canonical(r.gw))));
      if (!found) throw checkFailed(`route to ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in ${env.netns}`);
    }
    return link.peerIndex;
  });

  if (hostIface) {
    await withNetlink(undefined, async (nl) => {
      const host = await nl.getLink(hostIface.name);
      if (!host) throw checkFailed(`host veth "${hostIface.name}" does not exist`);
      if (peerIndex !== undefined && host.index !== peerIndex) {
        throw checkFailed(`host veth "${hostIface.name}" is not the peer of "${env.ifname}"`);
      }
      if (host.master !== bridgeIndex) throw checkFailed(`host veth "${hostIface.name}" is not attached to bridge "${s.bridge}"`);
    });
  }

  if (s.ipMasq && prev.ips?.length) {
    const firewall = await openFirewall(s.ipMasqBackend);
    await firewall.checkMasquerade({
      network: s.network,
      containerId: env.containerId,
      ifname: env.ifname,
      addresses: prev.ips.map((ip) => ip.address),
      hostInterface: s.bridge,
    });
  }
}
