/** The loopback plugin: brings `lo` up in the container (the "none" network mode; cni-spec §B4). */
import { type CniPlugin, type CniResult, CtnetError, ErrorCode, latestVersion, type PluginContext } from '../../core/index.js';
import { isNetns, withNetlink } from '../../netns/index.js';
import { loopbackConfig } from './schema.js';

/** The plugin always works on `lo`, whatever CNI_IFNAME says (reference behaviour). */
const loopbackName = 'lo';

async function add(ctx: PluginContext): Promise<CniResult> {
  const { netns } = ctx.env;
  const addresses = await withNetlink(netns, async (nl) => {
    const lo = await nl.getLink(loopbackName);
    if (!lo) throw new CtnetError(ErrorCode.internal, `failed to set up ${loopbackName}: it does not exist in ${netns}`);
    await nl.updateLink(lo.index, { up: true });
    const addrs = await nl.listAddresses(loopbackName);
    const foreign = addrs.find((a) => !(a.family === 4 ? a.address.startsWith('127.') : a.address === '::1'));
    if (foreign) {
      throw new CtnetError(
        ErrorCode.invalidConfig,
        `failed to set up ${loopbackName}: it carries the non-loopback address ${foreign.cidr}`,
      );
    }
    return addrs;
  });
  if (ctx.prevResult) return ctx.prevResult;
  const v4 = addresses.find((a) => a.family === 4);
  const v6 = addresses.find((a) => a.family === 6);
  return {
    cniVersion: latestVersion,
    interfaces: [{ name: loopbackName, mac: '00:00:00:00:00:00', sandbox: netns }],
    ips: [v4, v6].filter((a) => a !== undefined).map((a) => ({ address: a.cidr, interface: 0 })),
  };
}

async function del(ctx: PluginContext): Promise<void> {
  const { netns } = ctx.env;
  // Gone or empty: nothing to undo (the namespace took lo with it).
  if (!netns || !isNetns(netns)) return;
  await withNetlink(netns, async (nl) => {
    const lo = await nl.getLink(loopbackName);
    if (lo) await nl.updateLink(lo.index, { up: false });
  });
}

async function check(ctx: PluginContext): Promise<void> {
  const up = await withNetlink(ctx.env.netns, async (nl) => (await nl.getLink(loopbackName))?.up ?? false);
  if (!up) throw new CtnetError(ErrorCode.internal, `CHECK failed: ${loopbackName} is not up in ${ctx.env.netns}`);
}

export const loopbackPlugin: CniPlugin = {
  name: 'loopback',
  config: loopbackConfig,
  add,
  del,
  check,
};
