/** Address arithmetic the bridge needs: gateways, families, default routes. */
import { Address4, Address6 } from 'ip-address';
import type { CniIpConfig, CniRoute } from '../../core/index.js';

export type Family = 4 | 6;

export function familyOf(addressOrCidr: string): Family {
  return addressOrCidr.includes(':') ? 6 : 4;
}

function parse(cidr: string): Address4 | Address6 {
  return familyOf(cidr) === 4 ? new Address4(cidr) : new Address6(cidr);
}

/** "10.1.2.3/24" → "10.1.2.1": the first host of the subnet, the reference's default gateway. */
export function firstHost(cidr: string): string {
  const a = parse(cidr);
  const next = a.startAddress().bigInt() + 1n;
  return a instanceof Address4 ? Address4.fromBigInt(next).correctForm() : Address6.fromBigInt(next).correctForm();
}

export function prefixLength(cidr: string): number {
  return parse(cidr).subnetMask;
}

/** "10.1.2.3/24" → "10.1.2.0/24" */
export function subnetOf(cidr: string): string {
  const a = parse(cidr);
  return `${a.startAddress().correctForm()}/${a.subnetMask}`;
}

export function addressOf(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

/** Canonical text of an address, so "fd00:0::1" and "fd00::1" compare equal. */
export function canonical(address: string): string {
  return familyOf(address) === 4 ? new Address4(address).correctForm() : new Address6(address).correctForm();
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
