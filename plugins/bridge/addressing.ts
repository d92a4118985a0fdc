/**
 * Address arithmetic the bridge needs: gateways, families, default routes. On ipam/'s BigInt
 * arithmetic rather than `ip-address`, whose load costs 5–15 ms of every call (see ipam/address.ts).
 */
import { type CniIpConfig, type CniRoute, CtnetError, ErrorCode } from '../../core/index.js';
import { type Cidr, formatCidr, formatIp, networkOf, offset, parseCidr, parseIp } from '../../ipam/index.js';

export type Family = 4 | 6;

export function familyOf(addressOrCidr: string): Family {
  return addressOrCidr.includes(':') ? 6 : 4;
}

/** Addresses come from the IPAM plugin's result: a malformed one is that plugin's fault, named here. */
function cidrOf(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new CtnetError(ErrorCode.invalidConfig, `invalid address "${text}" from IPAM: expected address/prefix`);
  return c;
}

/** "10.1.2.3/24" → "10.1.2.1": the first host of the subnet, the reference's default gateway. */
export function firstHost(cidr: string): string {
  return formatIp(offset(networkOf(cidrOf(cidr)), 1n));
}

export function prefixLength(cidr: string): number {
  return cidrOf(cidr).prefix;
}

/** "10.1.2.3/24" → "10.1.2.0/24" */
export function subnetOf(cidr: string): string {
  const c = cidrOf(cidr);
  return formatCidr(networkOf(c), c.prefix);
}

export function addressOf(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

/** Canonical text of an address, so "fd00:0::1" and "fd00::1" compare equal. */
export function canonical(address: string): string {
  const ip = parseIp(address);
  if (!ip) throw new CtnetError(ErrorCode.invalidConfig, `invalid IP address "${address}"`);
  return formatIp(ip);
}

export const defaultRouteDst: Record<Family, string> = { 4: '0.0.0.0/0', 6: '::/0' };

/**
 * isGateway: every address gets a gateway (the subnet's first host when IPAM gave none).
 * isDefaultGateway: a default route per family via that gateway, unless IPAM already routes
 * the default of that family through a gateway.
 */
export function applyGatewayPolicy(
  ips: CniIpConfig[],
  routes: CniRoute[],
  opts: { isGateway: boolean; isDefaultGateway: boolean },
): { ips: CniIpConfig[]; routes: CniRoute[] } {
  const outIps = ips.map((ip) => (opts.isGateway && !ip.gateway ? { ...ip, gateway: firstHost(ip.address) } : { ...ip }));
  const outRoutes = routes.map((r) => ({ ...r }));
  if (opts.isDefaultGateway) {
    for (const family of [4, 6] as const) {
      const gwIp = outIps.find((ip) => familyOf(ip.address) === family && ip.gateway);
      if (!gwIp?.gateway) continue;
      const hasDefault = outRoutes.some((r) => r.dst === defaultRouteDst[family] && r.gw);
      if (!hasDefault) outRoutes.push({ dst: defaultRouteDst[family], gw: gwIp.gateway });
    }
  }
  return { ips: outIps, routes: outRoutes };
}
