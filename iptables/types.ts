/** The firewall API: what callers (bridge ipMasq, portmap, runner) see; backends implement it. */
import type { Family, PortMapping } from '../core/index.js';
import type { NodeRulesSpec } from './node-rules.js';

export type { PortMapping, PortProtocol } from '../core/index.js';
export { portProtocols } from '../core/index.js';

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
  /**
   * The host interface the container's subnet is on (the bridge): traffic leaving through it stays in the subnet
   * and is not masqueraded. Required by the nftables backend, which tells the subnet by it.
   */
  hostInterface?: string;
}

export interface PortForwardSpec extends AttachmentKey {
  /** Container addresses in CIDR form; the first IPv4 and the first IPv6 are the DNAT targets. */
  containerAddresses: string[];
  mappings: PortMapping[];
  /** Masquerade hairpin (container → published port) and localhost (127.0.0.1 → published port). Default true. */
  snat?: boolean;
  /** Masquerade every source, not only the container's subnet (for plugins without a host-side bridge). */
  masqAll?: boolean;
  /** Packet mark bit (0–31) used to ask for masquerade in postrouting. Default 13 (0x2000). */
  markMasqBit?: number;
  /** iptables only: jump to this existing chain to mark for masquerade instead of setting the mark ourselves. */
  externalSetMarkChain?: string;
  /** Extra match tokens for the DNAT rules, per family, in the backend's syntax. */
  conditions?: { 4?: string[]; 6?: string[] };
  /**
   * The host interface the container's subnet is on (its bridge, or the host end of a point-to-point link): a
   * connection that arrives there is hairpin. Lets the nftables backend keep the attachment as elements only.
   */
  hostInterface?: string;
}

/**
 * A network isolated from the other isolated networks (Docker's model: containers on different user-defined networks
 * cannot reach each other). Keyed by its bridge: forwarded traffic from one isolated bridge to another is dropped;
 * traffic within a bridge, and between a bridge and anything else (the uplink, the host), passes.
 */
export interface NetworkIsolation {
  network: string;
  bridge: string;
}

/** A rule, or an element of one of our sets, as the kernel holds it: what `describe` answers. */
export interface FirewallRule {
  backend: 'iptables' | 'nftables';
  family: Family | 'inet';
  table: string;
  /** Its chain; `@<set>` for an element of one of our sets (the nftables backend keeps attachments as elements). */
  chain: string;
  /**
   * iptables: the rule in save syntax without the `-A CHAIN` prefix; nftables: the statement text, and an element of a
   * DNAT map read as the rule it stands for (`tcp dport 8080 dnat ip to 10.22.0.5:80 comment "…"`).
   */
  rule: string;
  packets: number;
  bytes: number;
  /** 1-based position within its chain (iptables numbering). */
  position: number;
  /** What of ours it belongs to, read from its comment; absent for rules that are not ours. */
  owner?: RuleOwner;
}

export type RuleOwner = { kind: string; key: AttachmentKey } | { kind: 'isolation'; network: string };

export interface FirewallChain {
  family: Family | 'inet';
  table: string;
  name: string;
  /** Built-in chains have a policy; user chains have '-'. */
  policy: string;
  packets: number;
  bytes: number;
}

/**
 * The firewall state a backend sees in the current network namespace: every rule of the tables it writes (others'
 * rules too, since those are what can stand in a packet's way), which of them are ours, and the isolated networks.
 */
export interface FirewallState {
  backend: FirewallBackendName;
  rules: FirewallRule[];
  chains: FirewallChain[];
  isolation: {
    networks: NetworkIsolation[];
    /** Whether the forward path consults the isolation rules (iptables: FORWARD's jump; nftables: its base rule). */
    hooked: boolean;
  };
}

export interface Firewall {
  readonly backend: FirewallBackendName;
  /**
   * Isolates `net.bridge` from the other bridges this backend isolates (one batch per family; idempotent). Set up per
   * network, as network create does; a pair of networks is isolated when one backend holds both.
   */
  setupNetworkIsolation(net: NetworkIsolation): Promise<void>;
  /** Removes the network's isolation (by its bridge); the last one's teardown leaves no isolation rule. Idempotent. */
  teardownNetworkIsolation(net: NetworkIsolation): Promise<void>;
  /** The backend's state, for the debugger (read-only). */
  describe(): Promise<FirewallState>;

  /** Installs masquerade for the attachment in one batch per address family; replaces what an earlier ADD left. */
  setupMasquerade(spec: MasqueradeSpec): Promise<void>;
  /**
   * Removes the attachment's masquerade state; needs no addresses or stored state; idempotent. `knownAddresses`
   * (the addresses setup was given, e.g. from prevResult) and `hostInterface` (setup's) only let a backend skip
   * reading its rules first; a family absent from them is taken to have no rules.
   */
  teardownMasquerade(key: AttachmentKey, knownAddresses?: string[], hostInterface?: string): Promise<void>;
  /** Throws a CtnetError when any of the spec's masquerade rules is missing. */
  checkMasquerade(spec: MasqueradeSpec): Promise<void>;
  /** Removes masquerade state of attachments of `network` that are not in `valid`. */
  gcMasquerade(network: string, valid: AttachmentKey[]): Promise<void>;

  /** Installs the attachment's port forwards (DNAT, hairpin and localhost masquerade) in one batch per family. */
  setupPortForwards(spec: PortForwardSpec): Promise<void>;
  /**
   * Removes the attachment's port forwards; needs neither mappings nor addresses; idempotent. `known` (the host
   * ports it published, the families of its addresses) only lets a backend skip reading its rules first; a family
   * absent from it is taken to have no rules.
   */
  teardownPortForwards(key: AttachmentKey, known?: KnownForwards): Promise<void>;
  /** Throws a CtnetError when any of the spec's forwarding rules is missing. */
  checkPortForwards(spec: PortForwardSpec): Promise<void>;
  /** Removes port forwards of attachments of `network` that are not in `valid`. */
  gcPortForwards(network: string, valid: AttachmentKey[]): Promise<void>;

  /** Installs a cluster node's rules (node-rules.ts), replacing the ones there; one batch per table. */
  setupNodeRules(spec: NodeRulesSpec): Promise<void>;
  /** Removes the node rules; idempotent. */
  teardownNodeRules(): Promise<void>;
  /** The node rules in the backend's own syntax (empty when none). */
  listNodeRules(): Promise<string[]>;
}

/** What DEL knows of an attachment's forwards without reading the firewall (its reservations, prevResult). */
export interface KnownForwards {
  /** hostIP: '' or absent, '0.0.0.0', '::' = every address; else the one address the mapping was limited to. */
  forwards: { protocol: string; hostPort: number; hostIP?: string }[];
  families: (4 | 6)[];
  /**
   * The container's addresses (CIDR) and ADD's snat and masqAll: with them a backend that keeps elements per
   * attachment can look its elements up by key instead of listing.
   */
  addresses?: string[];
  snat?: boolean;
  masqAll?: boolean;
  hostInterface?: string;
}
