/** The bridge plugin's config with defaults applied, and the checks a schema cannot express. */
import { type CniDns, type CniEnv, CtnetError, ErrorCode, parseCniArgs, validateIfname } from '../../core/index.js';
import type { BridgeNetConf, VlanTrunkEntry } from './schema.js';

export type { BridgeNetConf, VlanTrunkEntry } from './schema.js';

export interface BridgeSettings {
  network: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  ipMasqBackend: 'iptables' | 'nftables' | 'auto';
  mtu: number | undefined;
  hairpinMode: boolean;
  promiscMode: boolean;
  /** Access VLAN (pvid, untagged), 0 = none. */
  vlan: number;
  /** Tagged VLAN ids of the trunk. */
  trunkVlans: number[];
  preserveDefaultVlan: boolean;
  enableDad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  ipamType: string | undefined;
  dns: CniDns | undefined;
}

/** The bridge the reference plugin uses when none is named. */
export const defaultBridgeName = 'cni0';

function invalid(message: string): CtnetError {
  return new CtnetError(ErrorCode.invalidConfig, `invalid network config: ${message}`);
}

function trunkVlans(entries: VlanTrunkEntry[] | undefined): number[] {
  const ids = new Set<number>();
  for (const [i, e] of (entries ?? []).entries()) {
    if (e.id !== undefined) {
      if (e.minID !== undefined || e.maxID !== undefined) throw invalid(`"vlanTrunk[${i}]" sets id together with minID/maxID`);
      if (e.id < 1) throw invalid(`"vlanTrunk[${i}].id" must be 1..4094`);
      ids.add(e.id);
      continue;
    }
    if (e.minID === undefined || e.maxID === undefined) throw invalid(`"vlanTrunk[${i}]" needs id, or minID and maxID`);
    if (e.minID < 1 || e.maxID < e.minID) throw invalid(`"vlanTrunk[${i}]" range ${e.minID}..${e.maxID} is not valid`);
    for (let v = e.minID; v <= e.maxID; v++) ids.add(v);
  }
  return [...ids].sort((a, b) => a - b);
}

export function bridgeSettings(conf: BridgeNetConf): BridgeSettings {
  const isDefaultGateway = conf.isDefaultGateway ?? false;
  const ipamType = typeof conf.ipam?.type === 'string' && conf.ipam.type !== '' ? conf.ipam.type : undefined;
  return {
    network: conf.name,
    bridge: conf.bridge ?? defaultBridgeName,
    // isDefaultGateway implies isGateway (reference behaviour).
    isGateway: (conf.isGateway ?? false) || isDefaultGateway,
    isDefaultGateway,
    forceAddress: conf.forceAddress ?? false,
    ipMasq: conf.ipMasq ?? false,
    ipMasqBackend: conf.ipMasqBackend ?? 'auto',
    mtu: conf.mtu ? conf.mtu : undefined,
    hairpinMode: conf.hairpinMode ?? false,
    promiscMode: conf.promiscMode ?? false,
    vlan: conf.vlan ?? 0,
    trunkVlans: trunkVlans(conf.vlanTrunk),
    preserveDefaultVlan: conf.preserveDefaultVlan ?? false,
    enableDad: conf.enabledad ?? false,
    disableContainerInterface: conf.disableContainerInterface ?? false,
    portIsolation: conf.portIsolation ?? false,
    ipamType,
    dns: conf.dns,
  };
}

/** Semantic validation (skel runs it after the schema, before any handler touches the host). */
export function validateBridgeConf(conf: BridgeNetConf, _env: CniEnv): void {
  const s = bridgeSettings(conf);
  try {
    validateIfname(s.bridge, 'bridge name');
  } catch (err) {
    throw invalid(`"bridge": ${(err as Error).message}`);
  }
  if (s.hairpinMode && s.promiscMode) throw invalid('"hairpinMode" and "promiscMode" cannot both be true');
  if (s.disableContainerInterface && s.ipamType) {
    throw invalid('"disableContainerInterface" cannot be used with IPAM: an interface that is down cannot carry addresses');
  }
  if (conf.mtu !== undefined && conf.mtu !== 0 && conf.mtu < 68) throw invalid(`"mtu" ${conf.mtu} is below the minimum of 68`);
  if (conf.macspoofchk) {
    throw invalid('"macspoofchk": true is not supported by ctnet yet (it needs bridge-family nftables rules)');
  }
  if ((s.vlan > 0 || s.trunkVlans.length > 0) && s.isGateway) {
    throw invalid(
      '"vlan"/"vlanTrunk" together with "isGateway" is not supported by ctnet yet (the gateway would need a VLAN sub-interface)',
    );
  }
  if (s.ipMasq && !s.ipamType) throw invalid('"ipMasq" needs an "ipam" section: there are no addresses to masquerade');
}

const macPattern = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;

/** The container MAC: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac (reference precedence). */
export function requestedMac(conf: BridgeNetConf, env: CniEnv): string | undefined {
  // Other CNI_ARGS keys belong to other plugins (IP= to IPAM, K8S_* to nobody): not an error here.
  const fromArgs = parseCniArgs(env.args).get('MAC');
  const mac = conf.runtimeConfig?.mac || conf.args?.cni?.mac || fromArgs;
  if (mac === undefined || mac === '') return undefined;
  if (!macPattern.test(mac)) throw invalid(`MAC address ${JSON.stringify(mac)} is not valid`);
  return mac.toLowerCase();
}
