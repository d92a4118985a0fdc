/**
 * The nftables backend: everything lives in one table of our own (`inet ctnet`). Base chains hold only static
 * rules that look packets up in sets and maps (made and repaired by nft scripts, nft-base.ts); an attachment's
 * state is elements of those sets, each carrying the attachment's comment, added and removed in one nf_tables
 * transaction over netlink (nft-netlink.ts): no rule changes per container, and a cost that does not grow with
 * their number. Chains per attachment remain only for port forwards with extra match conditions (a DNAT chain per
 * attachment, reached through verdict maps).
 */
import { CtnetError, ErrorCode, wrapError } from '../core/index.js';
import {
  attachmentComment,
  attachmentLabel,
  isolationComment,
  isolationNetworkOf,
  validateIsolation,
  validateKey,
} from './attachment.js';
import { type ParsedCidr, parseCidr } from './cidr.js';
import { baseLines, nftApply, nftNames, T } from './nft-base.js';
import { parseNftRuleset } from './nft-describe.js';
import type { NftExec } from './nft-exec.js';
import { NftElements } from './nft-netlink.js';
import { NftNodeRules } from './nft-node.js';
import { OwnedElements } from './nft-owned.js';
import { isolationElements, isolationSets, markerElement, masqueradeElements, masqueradeSets, nftSets } from './nft-sets.js';
import { NftForwards } from './nftables-forwards.js';
import type { NodeRulesSpec } from './node-rules.js';
import type {
  AttachmentKey,
  Firewall,
  FirewallState,
  KnownForwards,
  MasqueradeSpec,
  NetworkIsolation,
  PortForwardSpec,
} from './types.js';

function groupByFamily(addresses: string[]): ParsedCidr[] {
  const seen = new Set<string>();
  return addresses.map(parseCidr).filter((p) => !seen.has(p.host) && seen.add(p.host));
}

/** The elements of an attachment's masquerade (none without addresses). */
function masqueradeState(key: AttachmentKey, addresses: string[], hostInterface: string | undefined, comment: string) {
  const addrs = groupByFamily(addresses);
  if (!addrs.length) return [];
  if (!hostInterface) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `failed to set up masquerade for ${attachmentLabel(key)}: the nftables backend needs the host interface of the container's subnet`,
    );
  }
  return [markerElement('masq', key, comment), ...addrs.flatMap((a) => masqueradeElements(a, hostInterface, comment))];
}

export class NftablesFirewall implements Firewall {
  private readonly forwards: NftForwards;
  private readonly owned: OwnedElements;
  private readonly node: NftNodeRules;
  readonly backend = 'nftables' as const;

  constructor(readonly exec: NftExec) {
    this.owned = new OwnedElements(new NftElements(nftNames.table), () => nftApply(exec, baseLines()));
    this.forwards = new NftForwards(exec, this.owned);
    this.node = new NftNodeRules(exec);
  }

  setupNodeRules(spec: NodeRulesSpec): Promise<void> {
    return this.node.setup(spec);
  }
  teardownNodeRules(): Promise<void> {
    return this.node.teardown();
  }
  listNodeRules(): Promise<string[]> {
    return this.node.list();
  }

  async setupNetworkIsolation(net: NetworkIsolation): Promise<void> {
    validateIsolation(net);
    const comment = isolationComment(net.network);
    try {
      await this.owned.install(isolationElements(net.bridge, comment), comment, isolationSets());
    } catch (err) {
      throw wrapError(`isolate network "${net.network}"`, err);
    }
  }

  async teardownNetworkIsolation(net: NetworkIsolation): Promise<void> {
    validateIsolation(net);
    try {
      // Keyed by the bridge, whatever network name the elements carry.
      await this.owned.removeKeys(isolationElements(net.bridge, isolationComment(net.network)));
    } catch (err) {
      throw wrapError(`end the isolation of network "${net.network}"`, err);
    }
  }

  async describe(): Promise<FirewallState> {
    const [ruleset, isolated] = await Promise.all([this.exec.list('list ruleset'), this.owned.list([nftSets.isolated])]);
    const rules = parseNftRuleset(ruleset ?? '');
    const networks = isolated.map((e) => ({
      network: isolationNetworkOf(e.comment ?? ''),
      bridge: e.key.toString('utf8').replace(/\0+$/, ''),
    }));
    const hooked = rules.some(
      (r) => r.table === nftNames.table && r.chain === nftNames.forward && r.rule.includes(`@${nftSets.isolated} `),
    );
    return { backend: this.backend, rules, chains: [], isolation: { networks, hooked: networks.length > 0 && hooked } };
  }

  setupPortForwards(spec: PortForwardSpec): Promise<void> {
    return this.forwards.setup(spec);
  }
  teardownPortForwards(key: AttachmentKey, known?: KnownForwards): Promise<void> {
    return this.forwards.teardown(key, known);
  }
  checkPortForwards(spec: PortForwardSpec): Promise<void> {
    return this.forwards.check(spec);
  }
  gcPortForwards(network: string, valid: AttachmentKey[]): Promise<void> {
    return this.forwards.gc(network, valid);
  }

  async setupMasquerade(spec: MasqueradeSpec): Promise<void> {
    validateKey(spec);
    const comment = attachmentComment('masq', spec);
    const want = masqueradeState(spec, spec.addresses, spec.hostInterface, comment);
    try {
      if (!want.length) await this.owned.removeListed(comment, masqueradeSets());
      else await this.owned.install(want, comment, masqueradeSets());
    } catch (err) {
      throw wrapError(`set up masquerade for ${attachmentLabel(spec)}`, err);
    }
  }

  async teardownMasquerade(key: AttachmentKey, knownAddresses?: string[], hostInterface?: string): Promise<void> {
    validateKey(key);
    const comment = attachmentComment('masq', key);
    try {
      if (knownAddresses?.length && hostInterface) {
        const candidates = masqueradeState(key, knownAddresses, hostInterface, comment);
        const outcome = await this.owned.removeKnown(comment, candidates);
        if (outcome === 'removed') return;
      }
      await this.owned.removeListed(comment, masqueradeSets());
    } catch (err) {
      throw wrapError(`tear down masquerade for ${attachmentLabel(key)}`, err);
    }
  }

  async checkMasquerade(spec: MasqueradeSpec): Promise<void> {
    validateKey(spec);
    const addrs = groupByFamily(spec.addresses);
    const comment = attachmentComment('masq', spec);
    const fail = (what: string) =>
      new CtnetError(ErrorCode.internal, `failed to check masquerade for ${attachmentLabel(spec)}: ${what}`);
    const base = await this.exec.list(`list chain ${T} ${nftNames.postrouting}`);
    for (const f of [4, 6] as const) {
      if (addrs.some((a) => a.family === f) && !base?.includes(`oifname != @${nftSets.masqLocal[f]} masquerade`)) {
        throw fail(`the ${nftNames.postrouting} chain does not masquerade sources in @${nftSets.masqSource[f]}`);
      }
    }
    const want = masqueradeState(spec, spec.addresses, spec.hostInterface, comment);
    const missing = await this.owned.firstMissing(want, comment);
    if (missing) throw fail(`an element of @${missing.set} for ${addrs.map((a) => a.address).join(', ')} is missing`);
  }

  async gcMasquerade(network: string, valid: AttachmentKey[]): Promise<void> {
    validateKey({ network, containerId: 'x', ifname: 'x' });
    const keepComments = new Set(valid.map((k) => attachmentComment('masq', { ...k, network })));
    try {
      await this.owned.collect(network, 'masq', masqueradeSets(), (k) => keepComments.has(attachmentComment('masq', k)));
      // GC also rewrites the base: an ADD leaves base chains as it finds them.
      if (await this.exec.list(`list table ${T}`)) await nftApply(this.exec, baseLines());
    } catch (err) {
      throw wrapError(`garbage-collect masquerade rules of network "${network}"`, err);
    }
  }
}
