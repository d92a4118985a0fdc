/** Shared helpers for the bridge plugin's integration tests. */
import { join } from 'node:path';
import { cniBinDir, createNetns, netnsPath, type PluginCall, type PluginOutcome, runPlugin, type Sandbox } from './sandbox.js';

export interface BridgeTestConf {
  cniVersion?: string;
  name?: string;
  bridge?: string;
  subnet?: string;
  subnet6?: string;
  dataDir: string;
  ipMasq?: boolean;
  mtu?: number;
  [key: string]: unknown;
}

export function bridgeConf(opts: BridgeTestConf): Record<string, unknown> {
  const { cniVersion = '1.0.0', name = 'testnet', bridge = 'ctt0', subnet = '10.99.0.0/24', subnet6, dataDir, ...rest } = opts;
  const ranges: object[][] = [[{ subnet }]];
  if (subnet6) ranges.push([{ subnet: subnet6 }]);
  return {
    cniVersion,
    name,
    type: 'bridge',
    bridge,
    isGateway: true,
    isDefaultGateway: true,
    ipam: { type: 'host-local', ranges, dataDir },
    ...rest,
  };
}

export const bridgeBin = join(cniBinDir, 'bridge');

export interface Container {
  id: string;
  ns: string;
  netns: string;
}

export async function newContainer(t: Parameters<typeof createNetns>[0], label = 'c'): Promise<Container> {
  const ns = await createNetns(t, label);
  return { id: `ctr-${ns.split('-')[1]}`, ns, netns: netnsPath(ns) };
}

export function call(command: PluginCall['command'], c: Container, extra: Partial<PluginCall> = {}): PluginCall {
  return { command, containerId: c.id, netns: c.netns, ifname: 'eth0', ...extra };
}

export async function bridgeCall(
  sb: Sandbox,
  command: PluginCall['command'],
  c: Container,
  conf: unknown,
  extra: Partial<PluginCall> = {},
): Promise<PluginOutcome> {
  return runPlugin(sb.host, bridgeBin, call(command, c, extra), conf);
}

/** The container's first address of a family from an ADD result. */
export function addressOf(result: Record<string, unknown> | undefined, family: 4 | 6 = 4): string {
  const ips = (result?.ips ?? []) as { address: string }[];
  const ip = ips.find((i) => (family === 6) === i.address.includes(':'));
  if (!ip) throw new Error(`no IPv${family} address in ${JSON.stringify(result)}`);
  return ip.address.split('/')[0] as string;
}
