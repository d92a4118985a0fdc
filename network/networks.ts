/**
 * ctnet's networks: one standard conflist per network in `$CTNET_ROOT/networks` (bridge +
 * host-local + portmap), so any CNI runtime can use them. Creating one checks its subnets against
 * every known network and the host's routes; the attachments of a network are read from the
 * host-local leases, the CNI result cache and the runner's containers (handed in: the runner is above).
 */
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  type Cidr,
  CtnetError,
  contains,
  containsCidr,
  ErrorCode,
  familyOf,
  formatCidr,
  formatIp,
  lastOf,
  type NetConf,
  offset,
  overlaps,
  parseCidr,
  parseCidrOrHost,
  requireIp,
  sha256Hex,
  subnetOf,
  validateNetworkName,
} from '../core/index.js';
import { listLeases } from '../ipam/index.js';
import { preferredBackend } from '../iptables/index.js';
import { withNetlink } from '../netns/index.js';
import { type CachedAttachment, CniRuntime } from './cni-runtime.js';
import { type LoadedNetwork, listNetworks } from './conflist.js';
import type { ContainerView } from './containers.js';
import type { IsolatedNetwork } from './isolation.js';
import { type CtnetPaths, foreignNetconfDirs } from './paths.js';

/** Metadata ctnet keeps in the conflist under this top-level key (ignored by other runtimes). */
export const metadataKey = 'ctnet';
/** Bridge names of created networks: this prefix + 8 hex of the name's hash (on-host contract). */
export const bridgePrefix = 'ctbr-';
/** Automatic IPv4 subnets: /24s from this pool (clear of Docker's 172.17/16 and Podman's 10.88/16). */
export const autoPoolV4 = '10.90.0.0/15';

export interface NetworkMetadata {
  created: string;
  internal: boolean;
  isolate: boolean;
  options: Record<string, string>;
}

export interface CreateNetworkOptions {
  name: string;
  subnets: string[];
  gateways: string[];
  ipRanges: string[];
  ipv6: boolean;
  internal: boolean;
  mtu?: number;
  options: Record<string, string>;
}

export interface NetworkSummary {
  name: string;
  file: string;
  bridge: string | undefined;
  subnets: string[];
  gateways: string[];
  internal: boolean;
  managed: boolean;
  plugins: string[];
}

export interface Attachment {
  containerId: string;
  ifname: string;
  /** Container name, when the runner knows it. */
  name?: string;
  addresses: string[];
  netns?: string;
  /** Where we learned of it. */
  sources: ('lease' | 'cache' | 'runner')[];
}

const optionAliases: Record<string, string> = {
  bridge: 'bridge',
  'com.docker.network.bridge.name': 'bridge',
  mtu: 'mtu',
  'com.docker.network.driver.mtu': 'mtu',
  ipMasq: 'ipMasq',
  'com.docker.network.bridge.enable_ip_masquerade': 'ipMasq',
  hairpin: 'hairpin',
  isolate: 'isolate',
  cniVersion: 'cniVersion',
  firewall: 'firewall',
};

function invalid(message: string, hint?: string): CtnetError {
  return new CtnetError(ErrorCode.invalidConfig, message, { hint });
}

function boolOption(key: string, value: string): boolean {
  if (/^(1|true|yes)$/i.test(value)) return true;
  if (/^(0|false|no)$/i.test(value)) return false;
  throw invalid(`invalid -o ${key}=${value}: expected true or false`);
}

export function defaultBridgeName(network: string): string {
  return `${bridgePrefix}${sha256Hex(network).slice(0, 8)}`;
}

/** A stable ULA /64 for a network's IPv6 when none is given (fd + 56 bits of the name's hash). */
export function defaultSubnetV6(network: string): string {
  const h = sha256Hex(`ctnet-v6:${network}`);
  return `fd${h.slice(0, 2)}:${h.slice(2, 6)}:${h.slice(6, 10)}:${h.slice(10, 14)}::/64`;
}

/** Every subnet a network's IPAM hands out (host-local `ranges` and the legacy top-level keys). */
export function subnetsOf(list: { plugins: NetConf[] }): { subnet: string; gateway?: string }[] {
  const out: { subnet: string; gateway?: string }[] = [];
  for (const plugin of list.plugins) {
    const ipam = plugin.ipam as Record<string, unknown> | undefined;
    if (!ipam) continue;
    if (typeof ipam.subnet === 'string') out.push({ subnet: ipam.subnet, gateway: ipam.gateway as string | undefined });
    if (Array.isArray(ipam.ranges)) {
      for (const set of ipam.ranges) {
        if (!Array.isArray(set)) continue;
        for (const r of set as { subnet?: unknown; gateway?: unknown }[]) {
          if (typeof r?.subnet === 'string')
            out.push({ subnet: r.subnet, gateway: typeof r.gateway === 'string' ? r.gateway : undefined });
        }
      }
    }
  }
  return out;
}

export function bridgeOf(list: { plugins: NetConf[] }): string | undefined {
  const bridge = list.plugins.find((p) => p.type === 'bridge');
  if (!bridge) return undefined;
  return typeof bridge.bridge === 'string' ? bridge.bridge : 'cni0';
}

export function metadataOf(list: Record<string, unknown>): NetworkMetadata | undefined {
  const m = list[metadataKey];
  return typeof m === 'object' && m !== null ? (m as NetworkMetadata) : undefined;
}

/** The dataDir host-local uses for this network (its leases are `<dataDir>/<name>/<ip>`). */
export function leaseDirOf(list: { name: string; plugins: NetConf[] }): string | undefined {
  const ipam = list.plugins.map((p) => p.ipam as Record<string, unknown> | undefined).find((i) => i?.type === 'host-local');
  if (!ipam) return undefined;
  return join(typeof ipam.dataDir === 'string' ? ipam.dataDir : '/var/lib/cni/networks', list.name);
}

export class NetworkStore {
  constructor(
    readonly paths: CtnetPaths,
    /** Other directories whose networks count for name and subnet clashes (e.g. /etc/cni/net.d). */
    readonly foreignDirs: string[] = foreignNetconfDirs(),
  ) {}

  all(): LoadedNetwork[] {
    return listNetworks([this.paths.networks, ...this.foreignDirs]).networks;
  }

  managed(): LoadedNetwork[] {
    return listNetworks([this.paths.networks]).networks;
  }

  get(name: string): LoadedNetwork {
    const net = this.all().find((n) => n.list.name === name);
    if (!net)
      throw new CtnetError(ErrorCode.invalidConfig, `network "${name}" not found`, {
        hint: 'list networks with `ctnet network ls`',
      });
    return net;
  }

  summary(net: LoadedNetwork): NetworkSummary {
    const subnets = subnetsOf(net.list);
    const meta = metadataOf(net.list);
    const bridge = net.list.plugins.find((p) => p.type === 'bridge');
    return {
      name: net.list.name,
      file: net.file,
      bridge: bridgeOf(net.list),
      subnets: subnets.map((s) => s.subnet),
      gateways: subnets.map((s) => s.gateway).filter((g): g is string => !!g),
      internal: meta?.internal ?? (bridge ? bridge.isGateway !== true && !bridge.ipMasq : false),
      managed: net.file.startsWith(`${this.paths.networks}/`),
      plugins: net.list.plugins.map((p) => p.type),
    };
  }

  /**
   * ctnet's networks that are isolated from each other (all bridge networks unless `-o isolate=false`), with the
   * firewall backend each names, by bridge.
   */
  isolatedNetworks(): IsolatedNetwork[] {
    const out = new Map<string, IsolatedNetwork>();
    for (const net of this.managed()) {
      const plugin = net.list.plugins.find((p) => p.type === 'bridge');
      const bridge = plugin ? bridgeOf(net.list) : undefined;
      if (!bridge || out.has(bridge) || metadataOf(net.list)?.isolate === false) continue;
      const named = plugin?.ipMasqBackend ?? net.list.plugins.find((p) => p.type === 'portmap')?.backend;
      const backend = named === 'iptables' || named === 'nftables' ? named : 'auto';
      out.set(bridge, { network: net.list.name, bridge, backend });
    }
    return [...out.values()].sort((a, b) => a.bridge.localeCompare(b.bridge));
  }

  /** Bridges of ctnet's networks that are isolated from each other. */
  isolatedBridges(): string[] {
    return this.isolatedNetworks().map((n) => n.bridge);
  }

  /** Builds, checks and writes the conflist for a new network; returns it. */
  async create(opts: CreateNetworkOptions): Promise<LoadedNetwork> {
    validateNetworkName(opts.name);
    if (this.all().some((n) => n.list.name === opts.name)) {
      throw new CtnetError(ErrorCode.exists, `failed to create network "${opts.name}": a network of that name exists`);
    }
    const options = normaliseOptions(opts.options);
    const cidrs = opts.subnets.map(parseSubnet);
    const taken = await this.takenSubnets();
    for (const c of cidrs) {
      const clash = taken.find((t) => overlaps(c, t.cidr));
      if (clash) {
        throw invalid(
          `failed to create network "${opts.name}": subnet ${formatCidr(c)} overlaps ${clash.owner}`,
          'choose another --subnet, or leave it out to get a free one',
        );
      }
    }
    if (!cidrs.some((c) => c.addr.family === 4))
      cidrs.unshift(
        pickFreeV4(
          taken.map((t) => t.cidr),
          opts.name,
        ),
      );
    if (opts.ipv6 && !cidrs.some((c) => c.addr.family === 6)) {
      const v6 = parseSubnet(defaultSubnetV6(opts.name));
      const clash = taken.find((t) => overlaps(v6, t.cidr));
      if (clash) throw invalid(`failed to create network "${opts.name}": subnet ${formatCidr(v6)} overlaps ${clash.owner}`);
      cidrs.push(v6);
    }
    if (!opts.ipv6 && cidrs.some((c) => c.addr.family === 6)) {
      throw invalid(`failed to create network "${opts.name}": an IPv6 --subnet needs --ipv6`);
    }
    if (options.firewall !== undefined && options.firewall !== 'iptables' && options.firewall !== 'nftables') {
      throw invalid(`invalid -o firewall=${options.firewall}: expected iptables or nftables`);
    }
    const firewall = (options.firewall as 'iptables' | 'nftables' | undefined) ?? (await preferredBackend());
    const list = buildConflist(opts, options, cidrs, this.paths.leases, firewall);
    const text = `${JSON.stringify(list, null, 2)}\n`;
    const file = join(this.paths.networks, `${opts.name}.conflist`);
    writeExclusive(file, text, opts.name);
    return { list: list as unknown as LoadedNetwork['list'], file, raw: text };
  }

  /** Subnets in use: every known network's, and the host's routes (default routes aside). */
  async takenSubnets(): Promise<{ cidr: Cidr; owner: string }[]> {
    const out: { cidr: Cidr; owner: string }[] = [];
    for (const net of this.all()) {
      for (const s of subnetsOf(net.list)) {
        // A broken foreign config cannot clash.
        const cidr = parseCidr(s.subnet);
        if (cidr) out.push({ cidr: subnetOf(cidr), owner: `network "${net.list.name}" (${s.subnet})` });
      }
    }
    for (const r of await hostRoutes()) {
      if (r.dst === '0.0.0.0/0' || r.dst === '::/0' || r.type === rtnMulticast) continue;
      const dst = parseCidrOrHost(r.dst);
      if (!dst) continue;
      const cidr = subnetOf(dst);
      if (cidr.addr.family === 6 && cidr.addr.value >> 118n === 0x3fan) continue; // fe80::/10 is on every link
      // Spelled as `ip route` shows it: a host route without its /32 or /128.
      const shown = r.dst.replace(/\/(32|128)$/, '');
      out.push({ cidr, owner: `the host route ${shown}${r.dev ? ` dev ${r.dev}` : ''}` });
    }
    return out;
  }

  /** Who is attached: host-local leases, cached CNI results and the runner's containers (`runner`, its records' views). */
  attachments(net: LoadedNetwork, runner: readonly ContainerView[]): Attachment[] {
    const byKey = new Map<string, Attachment>();
    const entry = (containerId: string, ifname: string) => {
      const key = `${containerId}\0${ifname}`;
      let a = byKey.get(key);
      if (!a) {
        a = { containerId, ifname, addresses: [], sources: [] };
        byKey.set(key, a);
      }
      return a;
    };
    for (const lease of readLeases(net)) {
      const a = entry(lease.containerId, lease.ifname);
      if (!a.addresses.includes(lease.ip)) a.addresses.push(lease.ip);
      if (!a.sources.includes('lease')) a.sources.push('lease');
    }
    const cache = new CniRuntime({ invoke: () => Promise.reject(new Error('read only')) }, this.paths.cniResults, []);
    for (const c of cache.cachedAttachments(net.list.name)) {
      const a = entry(c.containerId, c.ifName);
      for (const ip of addressesOfCached(c)) if (!a.addresses.includes(ip)) a.addresses.push(ip);
      if (c.netns) a.netns = c.netns;
      a.sources.push('cache');
    }
    for (const ctr of runner) {
      for (const att of ctr.attachments.filter((n) => n.network === net.list.name)) {
        const a = entry(ctr.id, att.ifname);
        a.name = ctr.name;
        if (ctr.netns) a.netns = ctr.netns;
        for (const cidr of att.addresses) {
          const ip = cidr.split('/')[0] as string;
          if (!a.addresses.includes(ip)) a.addresses.push(ip);
        }
        a.sources.push('runner');
      }
    }
    // Attachments made by `network connect` are cached ones: name them after the runner's container.
    for (const a of byKey.values()) a.name ??= runner.find((c) => c.id === a.containerId)?.name;
    return [...byKey.values()];
  }

  /** Removes a network ctnet manages; refuses while anything is attached (`runner`: as for attachments()). */
  remove(name: string, runner: readonly ContainerView[]): LoadedNetwork {
    const net = this.get(name);
    if (!this.summary(net).managed) {
      throw invalid(`failed to remove network "${name}": ${net.file} is not managed by ctnet`, 'remove that file yourself');
    }
    const attached = this.attachments(net, runner);
    if (attached.length) {
      const who = attached.map((a) => `${a.name ?? a.containerId}${a.addresses.length ? ` (${a.addresses.join(', ')})` : ''}`);
      throw new CtnetError(
        ErrorCode.exists,
        `failed to remove network "${name}": ${attached.length} container${attached.length > 1 ? 's are' : ' is'} attached: ${who.join(', ')}`,
        { hint: 'stop or disconnect them first' },
      );
    }
    rmSync(net.file, { force: true });
    // host-local leaves its lock and round-robin cursor behind; with no lease left they are ours to drop.
    const leaseDir = leaseDirOf(net.list);
    if (leaseDir) rmSync(leaseDir, { recursive: true, force: true });
    return net;
  }
}

/** RTN_MULTICAST: a multicast route says nothing about which unicast subnets are in use. */
const rtnMulticast = 5;

/** The main table's routes of this namespace, both families, with their device's name. */
function hostRoutes(): Promise<{ dst: string; dev?: string; type: number }[]> {
  return withNetlink(undefined, async (nl) => {
    const routes = await nl.listRoutes();
    const names = new Map((await nl.listLinks()).map((l) => [l.index, l.name]));
    return routes.map((r) => ({ dst: r.dst, dev: r.oif === undefined ? undefined : names.get(r.oif), type: r.type }));
  });
}

function normaliseOptions(raw: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    const canonical = optionAliases[key];
    if (!canonical) {
      throw invalid(`unknown option -o ${key}`, `known options: ${Object.keys(optionAliases).join(', ')}`);
    }
    out[canonical] = value;
  }
  return out;
}

/** A subnet as given (host bits cleared), or code 7 naming it. */
function parseSubnet(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw invalid(`invalid subnet ${JSON.stringify(text)}: not an address/prefix`);
  return subnetOf(c);
}

function pickFreeV4(taken: Cidr[], name: string): Cidr {
  const pool = parseSubnet(autoPoolV4);
  for (let base = pool.addr.value; base + 255n <= lastOf(pool).value; base += 256n) {
    const candidate: Cidr = { addr: { family: 4, value: base }, prefix: 24 };
    if (!taken.some((t) => overlaps(candidate, t))) return candidate;
  }
  throw new CtnetError(ErrorCode.noAddressesLeft, `failed to create network "${name}": no free /24 left in ${autoPoolV4}`, {
    hint: 'pass --subnet',
  });
}

function rangeFor(c: Cidr, opts: CreateNetworkOptions, name: string): Record<string, string> {
  const family = c.addr.family;
  const r: Record<string, string> = { subnet: formatCidr(c) };
  const gateway = opts.gateways.find((g) => requireIp(g, 'gateway').family === family);
  if (gateway) {
    const gw = requireIp(gateway, 'gateway');
    if (!contains(c, gw) || gw.value === c.addr.value || (family === 4 && gw.value === lastOf(c).value)) {
      throw invalid(`failed to create network "${name}": gateway ${gateway} is not a host address of ${formatCidr(c)}`);
    }
    r.gateway = gateway;
  } else {
    r.gateway = formatIp(offset(c.addr, 1n));
  }
  const rangeText = opts.ipRanges.find((x) => familyOf(x) === family);
  if (rangeText) {
    const range = parseSubnet(rangeText);
    if (!containsCidr(c, range))
      throw invalid(`failed to create network "${name}": --ip-range ${rangeText} is not inside ${formatCidr(c)}`);
    const first = range.addr.value === c.addr.value ? offset(c.addr, 1n) : range.addr;
    const last = family === 4 && lastOf(range).value === lastOf(c).value ? offset(lastOf(c), -1n) : lastOf(range);
    r.rangeStart = formatIp(first);
    r.rangeEnd = formatIp(last);
  }
  return r;
}

function buildConflist(
  opts: CreateNetworkOptions,
  options: Record<string, string>,
  cidrs: Cidr[],
  leaseRoot: string,
  firewall: 'iptables' | 'nftables' | undefined,
) {
  const mtu = opts.mtu ?? (options.mtu ? Number(options.mtu) : undefined);
  if (mtu !== undefined && (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535)) {
    throw invalid(`failed to create network "${opts.name}": MTU ${mtu} is outside 576-65535`);
  }
  const ipMasq = options.ipMasq === undefined ? true : boolOption('ipMasq', options.ipMasq);
  const hairpin = options.hairpin === undefined ? true : boolOption('hairpin', options.hairpin);
  const isolate = options.isolate === undefined ? true : boolOption('isolate', options.isolate);
  const bridge = options.bridge ?? defaultBridgeName(opts.name);
  if (Buffer.byteLength(bridge) > 15 || /[/:\s]/.test(bridge)) throw invalid(`invalid bridge name ${JSON.stringify(bridge)}`);
  const routes = opts.internal ? [] : cidrs.map((c) => ({ dst: c.addr.family === 4 ? '0.0.0.0/0' : '::/0' }));
  const bridgePlugin: Record<string, unknown> = {
    type: 'bridge',
    bridge,
    // An internal network has no gateway on the host and no default route: nothing leaves it.
    isGateway: !opts.internal,
    ipMasq: !opts.internal && ipMasq,
    hairpinMode: hairpin,
    ...(firewall && { ipMasqBackend: firewall }),
    ...(mtu !== undefined && { mtu }),
    ipam: {
      type: 'host-local',
      dataDir: leaseRoot,
      ranges: cidrs.map((c) => [rangeFor(c, opts, opts.name)]),
      ...(routes.length && { routes }),
    },
  };
  const plugins: Record<string, unknown>[] = [bridgePlugin];
  // Host-port reservations live under the state root too (the runner's default network does the same).
  if (!opts.internal)
    plugins.push({
      type: 'portmap',
      capabilities: { portMappings: true },
      snat: true,
      stateDir: join(dirname(leaseRoot), 'portmap'),
      ...(firewall && { backend: firewall }),
    });
  const metadata: NetworkMetadata = { created: new Date().toISOString(), internal: opts.internal, isolate, options };
  return { cniVersion: options.cniVersion ?? '1.1.0', name: opts.name, plugins, [metadataKey]: metadata };
}

function writeExclusive(file: string, text: string, name: string): void {
  let fd: number;
  try {
    mkdirSync(join(file, '..'), { recursive: true });
    fd = openSync(file, 'wx', 0o644);
  } catch (cause) {
    throw new CtnetError(
      ErrorCode.exists,
      `failed to create network "${name}": cannot create ${file}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

export interface Lease {
  ip: string;
  containerId: string;
  ifname: string;
}

/** host-local's leases of a network, read through IPAM's codec (ipam/lease-files.ts). */
export function readLeases(net: LoadedNetwork): Lease[] {
  const dir = leaseDirOf(net.list);
  if (!dir) return [];
  try {
    return listLeases(dir).map(({ ip, owner }) => ({ ip, containerId: owner.containerId, ifname: owner.ifname ?? '' }));
  } catch {
    return [];
  }
}

function addressesOfCached(c: CachedAttachment): string[] {
  const ips = (c.result?.ips ?? c.result?.ip ?? []) as { address?: string }[];
  return ips.map((i) => (i.address ?? '').split('/')[0] ?? '').filter(Boolean);
}
