/** Firewall library: masquerade, port forwards and network isolation over iptables, nftables, or nothing. */
export { attachmentComment, attachmentHash, parseAttachmentComment } from './attachment.js';
export { canonicalAddress, type Family, type ParsedCidr, parseCidr } from './cidr.js';
export { flushUdpConntrack } from './conntrack.js';
export { parseHostIP, validateConditions, validatePort, validateProtocol } from './forwards.js';
export { parseNftRuleset } from './nft-describe.js';
export type { NodeRulesSpec } from './node-rules.js';
export { openFirewall, preferredBackend } from './open.js';
export {
  type AttachmentKey,
  type Firewall,
  type FirewallBackendName,
  type FirewallChain,
  type FirewallRule,
  type FirewallState,
  type KnownForwards,
  type MasqueradeSpec,
  type NetworkIsolation,
  type PortForwardSpec,
  type PortMapping,
  type PortProtocol,
  portProtocols,
  type RuleOwner,
} from './types.js';
export { parseIptablesSave } from './xtables-describe.js';
export { findProgram } from './xtables-tools.js';
