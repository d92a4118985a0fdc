/**
 * The keys every network config has (spec §Network configuration), declared once with the decoder of
 * decode.ts; each plugin's declaration extends `netConfFields`. The result and the DNS shapes are
 * declared here too, so a prevResult is decoded by the same rules as the config around it.
 */
import { bool, type Decoded, int, list, mapOf, object, raw, str } from './decode.js';

export const dnsFields = object({ nameservers: list(str()), domain: str(), search: list(str()), options: list(str()) });

const attachmentFields = object({ containerID: str(), ifname: str() });

export const netConfFields = object({
  cniVersion: str(),
  name: str(),
  type: str(),
  capabilities: mapOf(bool()),
  ipam: object({ type: str() }),
  dns: dnsFields,
  args: raw(),
  runtimeConfig: raw(),
  prevResult: raw(),
  'cni.dev/valid-attachments': list(attachmentFields),
  'cni.dev/attachments': list(attachmentFields),
});

export const routeFields = object({
  dst: str(),
  gw: str(),
  mtu: int(),
  advmss: int(),
  priority: int(),
  table: int(),
  scope: int(),
});

const legacyIpFields = object({ ip: str(), gateway: str(), routes: list(routeFields) });

const ipFields = object({ version: str(), address: str(), gateway: str(), interface: int() });

/** A result of any supported version (0.1/0.2's ip4/ip6, 0.3.0's `ip` list, `ips` after). */
export const resultFields = object({
  cniVersion: str(),
  interfaces: list(object({ name: str(), mac: str(), mtu: int(), sandbox: str(), socketPath: str(), pciID: str() })),
  ips: list(ipFields),
  /** 0.3.0 named the list `ip` by mistake. */
  ip: list(ipFields),
  routes: list(routeFields),
  dns: dnsFields,
  ip4: legacyIpFields,
  ip6: legacyIpFields,
});

export type DecodedResult = Decoded<typeof resultFields>;
