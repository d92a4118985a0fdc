/**
 * The host-local IPAM section: parsing and validation (reference: plugins/ipam/host-local/backend/
 * allocator/{config,range,range_set}.go). Every error is code 7 and names the key path, e.g.
 * `ipam.ranges[0][1].rangeStart`, so a person can find the line to fix.
 *
 * Stricter than the reference where it only hides mistakes: a gateway outside its subnet and a
 * rangeStart after rangeEnd are rejected (the reference accepts both and then allocates oddly).
 */
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  type Cidr,
  type CniRoute,
  CtnetError,
  contains,
  ErrorCode,
  type Family,
  formatCidr,
  formatIp,
  type IpAddr,
  lastOf,
  type NetConf,
  networkOf,
  offset,
  parseCidr,
  parseIp,
} from '../core/index.js';

export const defaultDataDir = '/var/lib/cni/networks';

export interface IpRange {
  /** Key path of this range in the config, for messages ("ipam.ranges[0][1]" or "ipam"). */
  readonly path: string;
  /** The subnet, normalised to its network address. */
  readonly subnet: Cidr;
  readonly rangeStart: IpAddr;
  readonly rangeEnd: IpAddr;
  readonly gateway: IpAddr;
}

export interface RangeSet {
  /** Position in the combined list: names the `last_reserved_ip.<index>` cursor file. */
  readonly index: number;
  readonly path: string;
  readonly family: Family;
  readonly ranges: readonly IpRange[];
}

export interface IpamConfig {
  /** The network name: the lease directory is `<dataDir>/<network>`. */
  readonly network: string;
  readonly dataDir: string;
  readonly rangeSets: readonly RangeSet[];
  readonly routes: readonly CniRoute[];
  readonly resolvConf: string | undefined;
}

function invalid(message: string): CtnetError {
  return new CtnetError(ErrorCode.invalidConfig, `invalid network config: ${message}`);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function key(base: string, name: string): string {
  return base ? `${base}.${name}` : name;
}

function optionalIp(raw: Record<string, unknown>, base: string, name: string, family: Family): IpAddr | undefined {
  const value = raw[name];
  if (value === undefined || value === '') return undefined;
  const ip = typeof value === 'string' ? parseIp(value) : undefined;
  if (!ip) throw invalid(`${key(base, name)} ${JSON.stringify(value)} is not an IP address`);
  if (ip.family !== family) throw invalid(`${key(base, name)} ${value} is not an IPv${family} address like its subnet`);
  return ip;
}

/** One range {subnet, rangeStart, rangeEnd, gateway} with the reference's defaults filled in. */
export function parseRange(raw: unknown, path: string): IpRange {
  if (!isObject(raw)) throw invalid(`${path} must be an object with a "subnet"`);
  const subnetText = raw.subnet;
  if (typeof subnetText !== 'string' || subnetText === '') throw invalid(`${key(path, 'subnet')} is required`);
  const parsed = parseCidr(subnetText);
  if (!parsed) throw invalid(`${key(path, 'subnet')} ${JSON.stringify(subnetText)} is not a valid CIDR`);
  const family = parsed.addr.family;
  const bits = family === 4 ? 32 : 128;
  // A /31 or /32 (/127, /128) leaves nothing once the network address and the gateway are taken.
  if (parsed.prefix > bits - 2) {
    throw invalid(`${key(path, 'subnet')} ${subnetText} is too small to allocate from (at most /${bits - 2})`);
  }
  const network = networkOf(parsed);
  if (network.value !== parsed.addr.value) {
    throw invalid(
      `${key(path, 'subnet')} ${subnetText} has host bits set: the network address is ${formatCidr({ addr: network, prefix: parsed.prefix })}`,
    );
  }
  const subnet: Cidr = { addr: network, prefix: parsed.prefix };
  const inSubnet = (name: string, ip: IpAddr | undefined): IpAddr | undefined => {
    if (ip && !contains(subnet, ip)) {
      throw invalid(
        `${key(path, name)} ${formatIp(ip)} is outside subnet ${formatCidr({ addr: network, prefix: subnet.prefix })}`,
      );
    }
    return ip;
  };
  const gateway = inSubnet('gateway', optionalIp(raw, path, 'gateway', family)) ?? offset(network, 1n);
  const rangeStart = inSubnet('rangeStart', optionalIp(raw, path, 'rangeStart', family)) ?? offset(network, 1n);
  // IPv4 default end: one before the broadcast address; IPv6 has no broadcast.
  const last = lastOf(subnet);
  const rangeEnd = inSubnet('rangeEnd', optionalIp(raw, path, 'rangeEnd', family)) ?? (family === 4 ? offset(last, -1n) : last);
  if (rangeStart.value > rangeEnd.value) {
    throw invalid(`${key(path, 'rangeStart')} ${formatIp(rangeStart)} is after ${key(path, 'rangeEnd')} ${formatIp(rangeEnd)}`);
  }
  return { path, subnet, rangeStart, rangeEnd, gateway };
}

export function rangeContains(r: IpRange, ip: IpAddr): boolean {
  return ip.family === r.rangeStart.family && ip.value >= r.rangeStart.value && ip.value <= r.rangeEnd.value;
}

function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return (
    a.rangeStart.family === b.rangeStart.family &&
    a.rangeStart.value <= b.rangeEnd.value &&
    b.rangeStart.value <= a.rangeEnd.value
  );
}

export function describeRange(r: IpRange): string {
  return `${formatIp(r.rangeStart)}-${formatIp(r.rangeEnd)}`;
}

export function describeRangeSet(set: RangeSet): string {
  return set.ranges.map(describeRange).join(',');
}

function parseRangeSet(raw: unknown, path: string, index: number): RangeSet {
  if (!Array.isArray(raw) || raw.length === 0) throw invalid(`${path} must be a non-empty list of ranges`);
  // The legacy range's keys sit directly under ipam: name them there.
  const ranges = raw.map((r, i) => parseRange(r, path === 'ipam' ? 'ipam' : `${path}[${i}]`));
  const family = (ranges[0] as IpRange).subnet.addr.family;
  for (const [i, r] of ranges.entries()) {
    if (r.subnet.addr.family !== family) {
      throw invalid(`${r.path}.subnet mixes IPv${r.subnet.addr.family} into IPv${family} range set ${path}`);
    }
    for (const other of ranges.slice(i + 1)) {
      if (rangesOverlap(r, other))
        throw invalid(`${r.path} (${describeRange(r)}) overlaps ${other.path} (${describeRange(other)})`);
    }
  }
  return { index, path, family, ranges };
}

/** The single range written at the top of `ipam` (the old config form). */
function legacyRange(ipam: Record<string, unknown>): unknown[] | undefined {
  const present = ['subnet', 'rangeStart', 'rangeEnd', 'gateway'].some((k) => ipam[k] !== undefined && ipam[k] !== '');
  if (!present) return undefined;
  return [{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }];
}

function parseRoutes(raw: unknown): CniRoute[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('ipam.routes must be a list');
  return raw.map((r, i) => {
    const path = `ipam.routes[${i}]`;
    if (!isObject(r)) throw invalid(`${path} must be an object with "dst"`);
    if (typeof r.dst !== 'string' || !parseCidr(r.dst)) throw invalid(`${path}.dst ${JSON.stringify(r.dst)} is not a valid CIDR`);
    if (r.gw !== undefined && (typeof r.gw !== 'string' || !parseIp(r.gw))) {
      throw invalid(`${path}.gw ${JSON.stringify(r.gw)} is not an IP address`);
    }
    // Copied verbatim (mtu, priority, table … pass through), as the reference does.
    return { ...r } as unknown as CniRoute;
  });
}

const pseudoFilesystems: Record<number, string> = { 40864: 'proc', 1650812274: 'sysfs', 1853056627: 'nsfs' };

/**
 * A lease directory on /proc or /sys can never be made, and creating one there does not even fail: Node's
 * recursive mkdir spins forever on such a path. So the nearest existing ancestor of dataDir is checked first.
 */
function refusePseudoFilesystem(dataDir: string): void {
  for (let dir = resolve(dataDir); ; dir = dirname(dir)) {
    let type: number;
    try {
      type = statfsSync(dir).type;
    } catch {
      if (dir === dirname(dir)) return;
      continue;
    }
    const fs = pseudoFilesystems[type];
    if (fs) throw invalid(`ipam.dataDir ${JSON.stringify(dataDir)} is on ${fs}, where no lease directory can be made`);
    return;
  }
}

/**
 * Parses the `ipam` section of a netconf (the plugin's own or the bridge's, delegated).
 * Range sets, in the reference's order: runtimeConfig.ipRanges, then the legacy top-level range,
 * then ipam.ranges.
 */
export function parseIpamConfig(conf: NetConf): IpamConfig {
  const ipam = conf.ipam;
  if (!isObject(ipam)) throw invalid('ipam is required and must be an object');
  const sources: { raw: unknown; path: string }[] = [];
  const runtimeRanges = isObject(conf.runtimeConfig) ? conf.runtimeConfig.ipRanges : undefined;
  if (runtimeRanges !== undefined) {
    if (!Array.isArray(runtimeRanges)) throw invalid('runtimeConfig.ipRanges must be a list of range sets');
    runtimeRanges.forEach((raw, i) => {
      sources.push({ raw, path: `runtimeConfig.ipRanges[${i}]` });
    });
  }
  const legacy = legacyRange(ipam);
  if (legacy) sources.push({ raw: legacy, path: 'ipam' });
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges)) throw invalid('ipam.ranges must be a list of range sets');
    ipam.ranges.forEach((raw, i) => {
      sources.push({ raw, path: `ipam.ranges[${i}]` });
    });
  }
  if (sources.length === 0) throw invalid('ipam.ranges is required (no IP ranges specified)');
  const rangeSets = sources.map(({ raw, path }, index) => parseRangeSet(raw, path, index));
  for (const [i, a] of rangeSets.entries()) {
    for (const b of rangeSets.slice(i + 1)) {
      for (const ra of a.ranges) {
        for (const rb of b.ranges) {
          if (rangesOverlap(ra, rb)) {
            throw invalid(`range set ${a.path} (${describeRange(ra)}) overlaps range set ${b.path} (${describeRange(rb)})`);
          }
        }
      }
    }
  }
  const dataDir = ipam.dataDir || defaultDataDir;
  if (typeof dataDir !== 'string') throw invalid('ipam.dataDir must be a non-empty path');
  refusePseudoFilesystem(dataDir);
  const resolvConf = ipam.resolvConf;
  if (resolvConf !== undefined && typeof resolvConf !== 'string') throw invalid('ipam.resolvConf must be a path');
  return {
    network: conf.name,
    dataDir,
    rangeSets,
    routes: parseRoutes(ipam.routes),
    resolvConf: resolvConf || undefined,
  };
}
