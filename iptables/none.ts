/** The no-op backend: callers never branch on "is there a firewall". */
import { validateIsolation, validateKey } from './attachment.js';
import { parseCidr } from './cidr.js';
import { normalizeForwards } from './forwards.js';
import { canonicalNodeRules, type NodeRulesSpec } from './node-rules.js';
import type { AttachmentKey, Firewall, FirewallState, MasqueradeSpec, NetworkIsolation, PortForwardSpec } from './types.js';

export class NoFirewall implements Firewall {
  readonly backend = 'none' as const;

  async setupMasquerade(spec: MasqueradeSpec): Promise<void> {
    // Still validate: bad input is an error whatever the backend.
    validateKey(spec);
    spec.addresses.forEach(parseCidr);
  }
  async teardownMasquerade(key: AttachmentKey): Promise<void> {
    validateKey(key);
  }
  async checkMasquerade(spec: MasqueradeSpec): Promise<void> {
    validateKey(spec);
  }
  async gcMasquerade(): Promise<void> {}
  async setupPortForwards(spec: PortForwardSpec): Promise<void> {
    normalizeForwards(spec);
  }
  async teardownPortForwards(key: AttachmentKey): Promise<void> {
    validateKey(key);
  }
  async checkPortForwards(spec: PortForwardSpec): Promise<void> {
    normalizeForwards(spec);
  }
  async gcPortForwards(): Promise<void> {}
  async setupNodeRules(spec: NodeRulesSpec): Promise<void> {
    canonicalNodeRules(spec);
  }
  async teardownNodeRules(): Promise<void> {}
  async listNodeRules(): Promise<string[]> {
    return [];
  }
  async setupNetworkIsolation(net: NetworkIsolation): Promise<void> {
    validateIsolation(net);
  }
  async teardownNetworkIsolation(net: NetworkIsolation): Promise<void> {
    validateIsolation(net);
  }
  async describe(): Promise<FirewallState> {
    return { backend: this.backend, rules: [], chains: [], isolation: { networks: [], hooked: false } };
  }
}
