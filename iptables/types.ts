/** The firewall API: what callers (bridge ipMasq, portmap, runner) see; backends implement it. */

export type FirewallBackendName = 'iptables' | 'nftables' | 'none';

/** One CNI attachment: everything the firewall creates for it is named from a hash of these three. */
export interface AttachmentKey {
  network: string;
  containerId: string;
  ifname: string;
}

export interface MasqueradeSpec extends AttachmentKey {
  /**
   * Container addresses in CIDR notation (e.g. '10.22.0.5/24', 'fd00::5/64'): traffic from the address to anything
   * outside its subnet and not multicast is masqueraded.
   */
  addresses: string[];
}

export interface Firewall {
  readonly backend: FirewallBackendName;
  /** Installs masquerade for the attachment in one batch per address family; replaces what an earlier ADD left. */
  setupMasquerade(spec: MasqueradeSpec): Promise<void>;
  /** Removes the attachment's masquerade state; needs no addresses or stored state; idempotent. */
  teardownMasquerade(key: AttachmentKey): Promise<void>;
  /** Throws a CtnetError when any of the spec's masquerade rules is missing. */
  checkMasquerade(spec: MasqueradeSpec): Promise<void>;
  /** Removes masquerade state of attachments of `network` that are not in `valid`. */
  gcMasquerade(network: string, valid: AttachmentKey[]): Promise<void>;
}
