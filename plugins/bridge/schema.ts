/**
 * The bridge plugin's config, declared once: the reference plugin's keys, decoded as it decodes them
 * (core/cni/decode.ts). `BridgeNetConf` is derived from it; meanings are checked in config.ts.
 */
import { bool, type Decoded, extend, int, list, type NetConf, netConfFields, object, oneOf, str } from '../../core/index.js';

const vlanId = () => int(0, 4094);

export const bridgeConfig = extend(netConfFields, {
  bridge: str(),
  isGateway: bool(),
  isDefaultGateway: bool(),
  forceAddress: bool(),
  ipMasq: bool(),
  ipMasqBackend: oneOf(['iptables', 'nftables']),
  mtu: int(0, 65535),
  hairpinMode: bool(),
  promiscMode: bool(),
  vlan: vlanId(),
  vlanTrunk: list(object({ id: vlanId(), minID: vlanId(), maxID: vlanId() })),
  preserveDefaultVlan: bool(),
  enabledad: bool(),
  macspoofchk: bool(),
  disableContainerInterface: bool(),
  portIsolation: bool(),
  runtimeConfig: object({ mac: str() }),
  args: object({ cni: object({ mac: str() }) }),
});

export type BridgeNetConf = NetConf & Decoded<typeof bridgeConfig>;
export type VlanTrunkEntry = NonNullable<BridgeNetConf['vlanTrunk']>[number];
