/**
 * The netconf host-local reads, declared once and decoded as the reference decodes it. host-local
 * also receives the bridge's whole config when delegated to, so only its own keys are declared; the
 * values (CIDRs, ranges, overlaps) are checked in ipam/config.ts.
 */
import { type Decoded, extend, list, type NetConf, netConfFields, object, routeFields, str } from '../../core/index.js';

const range = object({ subnet: str(), rangeStart: str(), rangeEnd: str(), gateway: str() });
const rangeSets = list(list(range));

export const hostLocalConfig = extend(netConfFields, {
  ipam: object({
    type: str(),
    ranges: rangeSets,
    subnet: str(),
    rangeStart: str(),
    rangeEnd: str(),
    gateway: str(),
    routes: list(routeFields),
    dataDir: str(),
    resolvConf: str(),
  }),
  args: object({ cni: object({ ips: list(str()) }) }),
  runtimeConfig: object({ ips: list(str()), ipRanges: rangeSets }),
});

export type HostLocalNetConf = NetConf & Decoded<typeof hostLocalConfig>;
