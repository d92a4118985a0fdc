/** Firewall library: masquerade and port forwards over iptables, nftables, or nothing. */
export { attachmentComment, attachmentHash, parseAttachmentComment } from './attachment.js';
export { type Family, type ParsedCidr, parseCidr } from './cidr.js';
export { openFirewall } from './open.js';
export type { AttachmentKey, Firewall, FirewallBackendName, MasqueradeSpec } from './types.js';
