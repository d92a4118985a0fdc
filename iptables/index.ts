/** Firewall library: masquerade and port forwards over iptables, nftables, or nothing. */
export { attachmentComment, attachmentHash, parseAttachmentComment } from './attachment.js';
export { canonicalAddress, type Family, type ParsedCidr, parseCidr } from './cidr.js';
export { flushUdpConntrack } from './conntrack.js';
export { parseHostIP, validateConditions, validatePort, validateProtocol } from './forwards.js';
export type { NodeRulesSpec } from './node-rules.js';
export { openFirewall, preferredBackend } from './open.js';
export {
  type AttachmentKey,
  type Firewall,
  type FirewallBackendName,
  type KnownForwards,
  type MasqueradeSpec,
  type PortForwardSpec,
  type PortMapping,
  type PortProtocol,
  portProtocols,
} from './types.js';
export { findProgram } from './xtables-tools.js';
