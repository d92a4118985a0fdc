/**
 * Container networks from CNI config lists, driven through network/'s CNI runtime (the one `debug cni`
 * uses): ADD through the list in order, DEL in reverse with the final ADD result kept in the container's
 * record, CHECK in order; a failed ADD is followed by a DEL of the whole list, so nothing half-made stays.
 * Plugins run through an Executor (in-process for ctnet's own plugins, exec for any other type on CNI_PATH).
 *
 * The default network "ctnet" (bridge ctnet0, host-local, portmap) is written on first use with
 * a subnet that collides with neither Docker's nor Podman's default nor any route on the host.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CtnetError, ErrorCode, type Executor, formatIp, log, overlaps, parseCidr, parseCidrOrHost, run } from '../core/index.js';
import { preferredBackend } from '../iptables/index.js';
import { deleteNetns, withNetlink } from '../netns/index.js';
import {
  CniRuntime,
  type LoadedNetwork,
  loadNetwork,
  NetworkStore,
  parseNetworkConfig,
  syncIsolation,
} from '../network/index.js';
import { builtinPlugins } from '../plugins/index.js';
import type { RunnerPaths } from './paths.js';
import type { PortMapping } from './ports.js';

export const defaultNetworkName = 'ctnet';
/** Part of the on-host contract: the default network's bridge. */
export const defaultBridgeName = 'ctnet0';
export const containerIfname = 'eth0';
/** Docker's and Podman's defaults: never ours, even when the host has no route for them. */
export const reservedSubnets = ['172.17.0.0/16', '10.88.0.0/16'];

export interface Attachment {
  containerId: string;
  netns: string;
  ifname: string;
  capabilityArgs: Record<string, unknown>;
}

/** CNI_PATH for plugins: CTNET_CNI_PATH, else our bin/cni then the usual directories. */
export function cniPath(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.CNI_PATH) return env.CNI_PATH.split(':').filter(Boolean);
  const ours = resolve(process.argv[1] ?? '.', '..', '..', 'bin', 'cni');
  return [ours, '/opt/cni/bin', '/usr/lib/cni'];
}

/** The portmap capability's argument: hostIP only when one was given. */
export function portMappingsArg(ports: readonly PortMapping[]): Record<string, unknown>[] {
  return ports.map((p) => ({
    hostPort: p.hostPort,
    containerPort: p.containerPort,
    protocol: p.protocol,
    ...(p.hostIP ? { hostIP: p.hostIP } : {}),
  }));
}

/**
 * The CNI runtime the runner attaches and releases containers through (the one `debug cni` and `network
 * connect` use too). Plugins get only what they need from the runner's environment.
 */
export function runnerRuntime(executor: Executor, paths: { cniResults: string }): CniRuntime {
  const baseEnv = { PATH: process.env.PATH, CTNET_LOG_LEVEL: process.env.CTNET_LOG_LEVEL };
  return new CniRuntime(executor, paths.cniResults, cniPath(), baseEnv);
}

/** The network as stored with a container (DEL must use the exact list ADD used). */
export function networkFromText(text: string, file: string): LoadedNetwork {
  return { list: parseNetworkConfig(text, file), file, raw: text };
}

// ---- the default network -------------------------------------------------------------------

export function cidrsOverlap(a: string, b: string): boolean {
  const x = parseCidrOrHost(a);
  const y = parseCidrOrHost(b);
  return x !== undefined && y !== undefined && overlaps(x, y);
}

/** The first /24 of 10.90.0.0-10.99.255.0, then 192.168.200-255.0, that overlaps nothing in `used`. */
export function pickSubnet(used: readonly string[]): string {
  const taken = [...reservedSubnets, ...used];
  const candidates: string[] = [];
  for (let b = 90; b <= 99; b++) for (let c = 0; c < 256; c++) candidates.push(`10.${b}.${c}.0/24`);
  for (let c = 200; c < 256; c++) candidates.push(`192.168.${c}.0/24`);
  const free = candidates.find((cand) => !taken.some((t) => cidrsOverlap(cand, t)));
  if (!free)
    throw new CtnetError(
      ErrorCode.noAddressesLeft,
      'failed to choose a subnet for the default network: every candidate overlaps a route',
    );
  return free;
}

/**
 * IPv4 prefixes routed in the current network namespace (where the runner runs), and the subnet
 * already on the default bridge if it exists (a state root made afresh on a host that has
 * ctnet0 adopts its subnet instead of clashing with it).
 */
async function hostPrefixes(): Promise<{ used: string[]; onBridge?: string }> {
  const used: string[] = [];
  let onBridge: string | undefined;
  const routes = await run('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], { allowFailure: true });
  try {
    for (const r of JSON.parse(routes.stdout || '[]') as { dst?: string; dev?: string; protocol?: string }[]) {
      if (!r.dst || r.dst === 'default') continue;
      if (r.dev === defaultBridgeName && r.protocol === 'kernel' && r.dst.includes('/')) onBridge ??= r.dst;
      else used.push(r.dst);
    }
  } catch {
    /* no routes to avoid */
  }
  return { used, onBridge };
}

/** `backend`: the firewall backend both plugins name (absent: the plugins' own default, iptables first). */
export function defaultConflist(
  subnet: string,
  leaseDir: string,
  portmapDir: string,
  backend?: 'iptables' | 'nftables',
): Record<string, unknown> {
  const firewall = (key: string) => (backend ? { [key]: backend } : {});
  return {
    cniVersion: '1.0.0',
    name: defaultNetworkName,
    plugins: [
      {
        type: 'bridge',
        bridge: defaultBridgeName,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ...firewall('ipMasqBackend'),
        ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: leaseDir },
      },
      { type: 'portmap', capabilities: { portMappings: true }, stateDir: portmapDir, ...firewall('backend') },
    ],
  };
}

/** Loads network `name`; the default network's file is written on first use. */
export async function loadOrCreateNetwork(paths: RunnerPaths, name: string): Promise<LoadedNetwork> {
  const file = join(paths.networks, `${defaultNetworkName}.conflist`);
  if (name === defaultNetworkName && !existsSync(file)) {
    const { used, onBridge } = await hostPrefixes();
    const backend = await preferredBackend();
    const conf = defaultConflist(onBridge ?? pickSubnet(used), paths.leases, join(paths.root, 'portmap'), backend);
    mkdirSync(paths.networks, { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(conf, null, 2)}\n`);
    // A concurrent first run may have written it meanwhile; either file is a valid default.
    if (!existsSync(file)) {
      renameSync(tmp, file);
      await isolateDefaultNetwork(paths);
    } else rmSync(tmp, { force: true });
  }
  try {
    return loadNetwork(name, [paths.networks]);
  } catch (err) {
    // The message names the network and the directory already; only the hint is the runner's own.
    if (!(err instanceof CtnetError) || err.code !== ErrorCode.invalidConfig) throw err;
    throw new CtnetError(err.code, err.message, {
      hint: 'list networks with `ctnet network ls`, or create this one with `ctnet network create`',
    });
  }
}

/**
 * Like Docker's default bridge, the default network is isolated from user-defined networks; the
 * chains are written when it appears (later changes come from `network create`/`rm`). A failure
 * leaves isolation to `debug doctor --fix` and is logged, not fatal: the container still runs.
 */
async function isolateDefaultNetwork(paths: RunnerPaths): Promise<void> {
  try {
    await syncIsolation(new NetworkStore(paths).isolatedNetworks());
  } catch (err) {
    log.warn({ err }, 'failed to write the isolation rules of the default network');
  }
}

/** The first address of one family in a CNI result, split the way `inspect` shows it. */
export function addressOf(
  result: Record<string, unknown> | undefined,
  family: 4 | 6,
): { ip?: string; gateway?: string; prefix?: number } {
  const ips = (result?.ips ?? []) as { address?: string; gateway?: string }[];
  for (const i of ips) {
    const cidr = i.address === undefined ? undefined : parseCidr(i.address);
    if (cidr?.addr.family === family) return { ip: formatIp(cidr.addr), gateway: i.gateway, prefix: cidr.prefix };
  }
  return {};
}

/** The container's first IPv4 address and gateway from a final ADD result. */
export function primaryAddress(result: Record<string, unknown> | undefined): { ip?: string; gateway?: string; prefix?: number } {
  return addressOf(result, 4);
}

/**
 * The fast end of a namespace the runner made, for a container whose processes are gone and whose network
 * list holds only ctnet's own plugins: every global address is removed inside it, then its pin is removed,
 * and the caller runs CNI DEL without a namespace. The kernel then destroys the namespace, and the veth with
 * it, asynchronously; deleting the veth ourselves blocks ~25–40 ms in the kernel (the device unregister waits
 * for an RCU barrier), the largest single cost of a container's teardown. Removing the addresses first means
 * that a namespace kept alive by someone else (a process left in it, a pin in another mount namespace) can
 * never answer for an address IPAM hands out again; its veth then goes when that holder lets go. Returns
 * false when a step failed (the caller then does the ordinary DEL with the namespace).
 */
export async function retireNetns(nsPath: string, plugins: readonly { type: string }[]): Promise<boolean> {
  if (!plugins.every((p) => Object.hasOwn(builtinPlugins, p.type))) return false;
  try {
    await withNetlink(nsPath, async (nl) => {
      const names = new Map((await nl.listLinks()).map((l) => [l.index, l.name]));
      for (const a of await nl.listAddresses()) {
        const ifname = names.get(a.ifindex);
        // Scope 0 = global: loopback's and link-local addresses cannot clash with anything IPAM hands out.
        if (ifname && ifname !== 'lo' && a.scope === 0) await nl.delAddress(ifname, a.cidr);
      }
    });
    await deleteNetns(nsPath);
    return true;
  } catch (err) {
    log.warn({ err, netns: nsPath }, 'failed to retire a container namespace; deleting its interfaces instead');
    return false;
  }
}
