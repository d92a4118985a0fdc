/** Address arithmetic the bridge needs: gateways, families, default routes (over core's CIDR type). */
import {
  type Cidr,
  type CniIpConfig,
  type CniRoute,
  CtnetError,
  ErrorCode,
  type Family,
  familyOf,
  formatIp,
  networkOf,
  offset,
  parseCidr,
  requireIp,
} from '../../core/index.js';

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

export function addressOf(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

/** Canonical text of an address, so "fd00:0::1" and "fd00::1" compare equal. */
export function canonical(address: string): string {
  return formatIp(requireIp(address, 'IP address'));
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
