/**
 * The portmap plugin's config, declared once: the reference plugin's keys plus `stateDir`, decoded as
 * the reference decodes them (containerd sends `HostPort`, `ContainerPort`, `Protocol`, `HostIP`).
 * `PortmapNetConf` is derived from it; meanings (port ranges, addresses) are checked in config.ts so
 * the messages can name the offending mapping.
 */
import { bool, type Decoded, extend, int, list, type NetConf, netConfFields, object, oneOf, str } from '../../core/index.js';

export const portMappingFields = object({ hostPort: int(), containerPort: int(), protocol: str(), hostIP: str() });

export const portmapConfig = extend(netConfFields, {
  snat: bool(),
  masqAll: bool(),
  markMasqBit: int(0, 31),
  externalSetMarkChain: str(),
  conditionsV4: list(str()),
  conditionsV6: list(str()),
  backend: oneOf(['iptables', 'nftables']),
  stateDir: str(),
  runtimeConfig: object({ portMappings: list(portMappingFields) }),
});

export type PortmapNetConf = NetConf & Decoded<typeof portmapConfig>;
