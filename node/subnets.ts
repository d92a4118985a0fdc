/**
 * Subnet arithmetic of the cluster CIDR (IPv4): the node subnets it splits into, which are free, and the
 * addresses a node subnet's network uses.
 */
import { CtnetError, ErrorCode, formatIp, parseIp } from '../core/index.js';

export interface Cidr4 {
  base: bigint;
  prefix: number;
  text: string;
}

export function parseCidr4(text: string, what: string): Cidr4 {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  const ip = m ? parseIp(m[1] as string) : undefined;
  const prefix = m ? Number(m[2]) : Number.NaN;
  if (!m || !ip || ip.family !== 4 || !(prefix >= 0 && prefix <= 32)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid ${what} "${text}": expected an IPv4 CIDR such as 10.244.0.0/16`);
  }
  const size = 1n << BigInt(32 - prefix);
  const base = ip.value - (ip.value % size);
  return { base, prefix, text: `${formatIp({ family: 4, value: base })}/${prefix}` };
}

export function cidrContains(outer: Cidr4, inner: Cidr4): boolean {
  const size = 1n << BigInt(32 - outer.prefix);
  return inner.prefix >= outer.prefix && inner.base >= outer.base && inner.base < outer.base + size;
}

export function ipInCidr(ip: string, cidr: Cidr4): boolean {
  const v = parseIp(ip);
  if (v?.family !== 4) return false;
  const size = 1n << BigInt(32 - cidr.prefix);
  return v.value >= cidr.base && v.value < cidr.base + size;
}

/** Checks that node subnets of /subnetSize fit the cluster CIDR (at least two of them, at least 4 addresses each). */
export function checkSubnetSize(cluster: Cidr4, subnetSize: number): void {
  if (!Number.isInteger(subnetSize) || subnetSize <= cluster.prefix || subnetSize > 30) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `invalid subnet size /${subnetSize} for cluster CIDR ${cluster.text}: it must be longer than /${cluster.prefix} and at most /30`,
    );
  }
}

/** The node subnets of the cluster CIDR, in address order. */
export function* nodeSubnets(cluster: Cidr4, subnetSize: number): Generator<string> {
  const step = 1n << BigInt(32 - subnetSize);
  const end = cluster.base + (1n << BigInt(32 - cluster.prefix));
  for (let base = cluster.base; base < end; base += step) yield `${formatIp({ family: 4, value: base })}/${subnetSize}`;
}

/**
 * Free node subnets to try, `preferred` first when it is free and in the cluster: then, so that nodes joining at
 * the same instant rarely race for the same one, a random pick among the first free ones.
 */
export function candidateSubnets(
  cluster: Cidr4,
  subnetSize: number,
  taken: ReadonlySet<string>,
  preferred?: string,
  count = 8,
): string[] {
  const out: string[] = [];
  if (preferred && !taken.has(preferred) && cidrContains(cluster, parseCidr4(preferred, 'subnet'))) {
    if (parseCidr4(preferred, 'subnet').prefix === subnetSize) out.push(preferred);
  }
  const free: string[] = [];
  for (const s of nodeSubnets(cluster, subnetSize)) {
    if (!taken.has(s) && s !== preferred) free.push(s);
    if (free.length >= count * 4) break;
  }
  for (let i = free.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [free[i], free[j]] = [free[j] as string, free[i] as string];
  }
  return [...out, ...free.slice(0, count)];
}

/** The nth address of a subnet (1: the gateway the bridge gets). */
export function nthAddress(subnet: string, n: number): string {
  const c = parseCidr4(subnet, 'subnet');
  return formatIp({ family: 4, value: c.base + BigInt(n) });
}
