/**
 * The iptables backend. Every change is rendered into one `iptables-restore --noflush` batch per address family
 * (atomic: one nf_tables transaction, or one table replace under the xtables lock for the legacy variant).
 * Reads are limited to the few chains an operation touches (`iptables -S CHAIN`), never the whole ruleset,
 * except in GC.
 */
import { CtnetError, ErrorCode, log, wrapError } from '../core/index.js';
import { attachmentComment, attachmentLabel, parseAttachmentComment, validateIsolation, validateKey } from './attachment.js';
import { type Family, type ParsedCidr, parseCidr } from './cidr.js';
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
import { parseIptablesSave } from './xtables-describe.js';
import { commentArg, commentOf, masqChainName, sourceOf, XtablesFamily, xtablesChains } from './xtables-family.js';
import { XtablesForwards } from './xtables-forwards.js';
import { isolatedIn, isolationChains, setupIsolation, teardownIsolation } from './xtables-isolation.js';
import { XtablesNodeRules } from './xtables-node.js';
import type { XtablesTools } from './xtables-tools.js';

export { dnatChainName, masqChainName, xtablesChains } from './xtables-family.js';

const multicast: Record<Family, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };

/** POSTROUTING's one jump into our chain (restore syntax without the -A/-C/-D verb). */
const baseJump = `POSTROUTING -m comment --comment "ctnet masquerade" -j ${xtablesChains.postrouting}`;

/** The rules of an attachment's masquerade for one family, in the exact form `iptables -S` prints them. */
function renderMasq(chain: string, comment: string, addrs: ParsedCidr[]): { chainRules: string[]; jumps: string[] } {
  const c = commentArg(comment);
  const chainRules: string[] = [];
  const jumps: string[] = [];
  for (const a of addrs) {
    chainRules.push(`-A ${chain} -s ${a.host} -d ${multicast[a.family]} ${c} -j RETURN`);
    chainRules.push(`-A ${chain} -s ${a.host} ! -d ${a.subnet} ${c} -j MASQUERADE`);
    jumps.push(`-A ${xtablesChains.postrouting} -s ${a.host} ${c} -j ${chain}`);
  }
  return { chainRules, jumps };
}

/** Lines that remove an attachment chain found with `existing` rules: its jumps (rebuilt from its sources), flush, delete. */
function renderRemoval(chain: string, existing: string[], keepChain: boolean): string[] {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const rule of existing) {
    const src = sourceOf(rule);
    const comment = commentOf(rule);
    if (!src || !comment || seen.has(src)) continue;
    seen.add(src);
    lines.push(`-D ${xtablesChains.postrouting} -s ${src} ${commentArg(comment)} -j ${chain}`);
  }
  lines.push(`-F ${chain}`);
  if (!keepChain) lines.push(`-X ${chain}`);
  return lines;
}

function groupByFamily(addresses: string[]): Record<Family, ParsedCidr[]> {
  const out: Record<Family, ParsedCidr[]> = { 4: [], 6: [] };
  const seen = new Set<string>();
  for (const text of addresses) {
    const p = parseCidr(text);
    if (seen.has(p.host)) continue;
    seen.add(p.host);
    out[p.family].push(p);
  }
  return out;
}

export class IptablesFirewall implements Firewall {
  readonly backend = 'iptables' as const;
  private readonly families: Record<Family, XtablesFamily>;
  private readonly forwards: XtablesForwards;
  private readonly node: XtablesNodeRules;

  constructor(readonly tools: XtablesTools) {
    this.families = { 4: new XtablesFamily(4, tools.family[4]), 6: new XtablesFamily(6, tools.family[6]) };
    this.forwards = new XtablesForwards(this.families);
    this.node = new XtablesNodeRules(this.families[4]);
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

  async setupNetworkIsolation(net: NetworkIsolation): Promise<void> {
    validateIsolation(net);
    await this.eachFamily(`isolate network "${net.network}"`, (fam) => setupIsolation(fam, net));
  }

  async teardownNetworkIsolation(net: NetworkIsolation): Promise<void> {
    validateIsolation(net);
    await this.eachFamily(`end the isolation of network "${net.network}"`, (fam) => teardownIsolation(fam, net));
  }

  /** Runs `fn` for both families at once; the first failure is thrown once both ended. */
  private async eachFamily(what: string, fn: (fam: XtablesFamily) => Promise<void>): Promise<void> {
    const results = await Promise.allSettled(([4, 6] as const).map((f) => fn(this.families[f])));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw wrapError(what, failed.reason);
  }

  async describe(): Promise<FirewallState> {
    const [v4, v6] = await Promise.all(
      ([4, 6] as const).map(async (f) => parseIptablesSave(await this.families[f].saveWithCounters(), f)),
    );
    const rules = [...(v4?.rules ?? []), ...(v6?.rules ?? [])];
    const isolation = rules.filter((r) => r.table === 'filter');
    const networks = isolatedIn(isolation.filter((r) => r.chain === isolationChains.second).map((r) => r.rule));
    // A network counts once whatever its families (isolatedIn keys by bridge); hooked when every family that isolates
    // jumps to the chains.
    const hooked = ([4, 6] as const).every(
      (f) =>
        !isolation.some((r) => r.family === f && r.chain === isolationChains.second) ||
        isolation.some((r) => r.family === f && r.chain === 'FORWARD' && r.rule.endsWith(`-j ${isolationChains.first}`)),
    );
    return {
      backend: this.backend,
      rules,
      chains: [...(v4?.chains ?? []), ...(v6?.chains ?? [])],
      isolation: { networks, hooked: networks.length > 0 && hooked },
    };
  }

  /** Makes sure CTNET-POSTROUTING exists and POSTROUTING jumps to it (rarely needed: only the first ADD). */
  private async ensureNatBase(fam: XtablesFamily, postrouting: string[]): Promise<void> {
    const jumps = (lines: string[]) => lines.some((l) => l.endsWith(`-j ${xtablesChains.postrouting}`));
    if (jumps(postrouting)) return;
    const jump = `-A ${baseJump}`;
    try {
      await fam.restore({ nat: [`-N ${xtablesChains.postrouting}`, jump] });
      return;
    } catch (err) {
      // Another ADD created the chain first (or it survived without its jump): look again, add only the jump.
      log.debug({ err }, 'nat base chain exists already');
    }
    if (jumps((await fam.listChain('nat', 'POSTROUTING')) ?? [])) return;
    await fam.restore({ nat: [jump] });
  }

  /**
   * The common case in two concurrent processes per family and no reads: the base chains exist (the `-C` of the base
   * jump, see holds()) and the attachment has no chain yet (the batch's `-N` is refused otherwise). When either
   * fails, the full path repairs the base and replaces whatever this batch made.
   */
  private async setupMasqueradeFast(chain: string, comment: string, byFamily: Record<Family, ParsedCidr[]>): Promise<boolean> {
    const results = await Promise.all(
      ([4, 6] as const).map(async (family) => {
        const addrs = byFamily[family];
        if (!addrs.length) return true;
        const { chainRules, jumps } = renderMasq(chain, comment, addrs);
        const lines = [`-N ${chain}`, ...chainRules, ...jumps];
        return this.families[family].addBesideSentinel('nat', lines, [baseJump], `masquerade ${chain}`);
      }),
    );
    return results.every(Boolean);
  }

  async setupMasquerade(spec: MasqueradeSpec): Promise<void> {
    validateKey(spec);
    const byFamily = groupByFamily(spec.addresses);
    const chain = masqChainName(spec);
    const comment = attachmentComment('masq', spec);
    // A family without addresses is not read on the fast path: its chain can only be left from an earlier ADD of
    // this very attachment without a DEL (against the spec), and DEL and GC remove it whatever the family.
    if (await this.setupMasqueradeFast(chain, comment, byFamily)) return;
    try {
      await Promise.all(
        ([4, 6] as const).map(async (family) => {
          const fam = this.families[family];
          const addrs = byFamily[family];
          // A family without addresses still gets its leftovers (an earlier ADD of this attachment) removed.
          const [existing, postrouting] = await Promise.all([
            fam.listChain('nat', chain),
            addrs.length ? fam.listChain('nat', 'POSTROUTING') : Promise.resolve(undefined),
          ]);
          if (!addrs.length && !existing) return;
          if (addrs.length) await this.ensureNatBase(fam, postrouting ?? []);
          const lines = existing ? renderRemoval(chain, existing, addrs.length > 0) : [];
          if (addrs.length) {
            if (!existing) lines.push(`-N ${chain}`);
            const { chainRules, jumps } = renderMasq(chain, comment, addrs);
            lines.push(...chainRules, ...jumps);
          }
          await fam.restore({ nat: lines });
        }),
      );
    } catch (err) {
      throw wrapError(`set up masquerade for ${attachmentLabel(spec)}`, err);
    }
  }

  async teardownMasquerade(key: AttachmentKey, knownAddresses?: string[]): Promise<void> {
    validateKey(key);
    const chain = masqChainName(key);
    const comment = attachmentComment('masq', key);
    const known = knownAddresses?.length ? groupByFamily(knownAddresses) : undefined;
    const errors: unknown[] = [];
    await Promise.all(
      ([4, 6] as const).map(async (family) => {
        try {
          const fam = this.families[family];
          const addrs = known?.[family];
          if (addrs?.length) {
            // The addresses the rules were made for: remove without reading first; a mismatch refuses the batch.
            const { jumps } = renderMasq(chain, comment, addrs);
            try {
              await fam.restore({ nat: [...jumps.map((j) => `-D ${j.slice(3)}`), `-F ${chain}`, `-X ${chain}`] });
              return;
            } catch (err) {
              log.debug({ err, chain, family }, 'masquerade removal by known addresses refused; listing the chain');
            }
          } else if (known) {
            // The setup had no address of this family (it used the same addresses), so it made no chain here.
            return;
          }
          await this.removeMasqChain(fam, chain);
        } catch (err) {
          errors.push(err);
        }
      }),
    );
    if (errors.length) throw wrapError(`tear down masquerade for ${attachmentLabel(key)}`, errors[0]);
  }

  private async removeMasqChain(fam: XtablesFamily, chain: string): Promise<void> {
    const existing = await fam.listChain('nat', chain);
    // A chain that does not exist has no jumps either: the kernel refuses to delete a chain still referenced.
    if (!existing) return;
    try {
      await fam.restore({ nat: renderRemoval(chain, existing, false) });
    } catch (err) {
      // A jump was changed or removed behind our back: find every jump to the chain the slow way.
      log.info({ err, chain }, 'rebuilt jump rules did not match; removing by listing CTNET-POSTROUTING');
      const jumps = ((await fam.listChain('nat', xtablesChains.postrouting)) ?? []).filter((l) => l.endsWith(` -j ${chain}`));
      await fam.restore({ nat: [...jumps.map((l) => `-D ${l.slice(3)}`), `-F ${chain}`, `-X ${chain}`] });
    }
  }

  async checkMasquerade(spec: MasqueradeSpec): Promise<void> {
    validateKey(spec);
    const byFamily = groupByFamily(spec.addresses);
    const chain = masqChainName(spec);
    const comment = attachmentComment('masq', spec);
    for (const family of [4, 6] as const) {
      const addrs = byFamily[family];
      if (!addrs.length) continue;
      const fam = this.families[family];
      const [existing, postrouting, base] = await Promise.all([
        fam.listChain('nat', chain),
        fam.listChain('nat', xtablesChains.postrouting),
        fam.listChain('nat', 'POSTROUTING'),
      ]);
      const { chainRules, jumps } = renderMasq(chain, comment, addrs);
      const have = new Set([...(existing ?? []), ...(postrouting ?? [])]);
      const missing = [...chainRules, ...jumps].filter((r) => !have.has(r));
      if (!(base ?? []).some((l) => l.endsWith(`-j ${xtablesChains.postrouting}`))) {
        missing.push(`-A POSTROUTING … -j ${xtablesChains.postrouting}`);
      }
      if (missing.length) {
        throw new CtnetError(
          ErrorCode.internal,
          `failed to check masquerade for ${attachmentLabel(spec)}: IPv${family} rules missing: ${missing.join('; ')}`,
        );
      }
    }
  }

  async gcMasquerade(network: string, valid: AttachmentKey[]): Promise<void> {
    validateKey({ network, containerId: 'x', ifname: 'x' });
    const keep = new Set(valid.map((k) => masqChainName({ ...k, network })));
    const errors: unknown[] = [];
    await Promise.all(
      ([4, 6] as const).map(async (family) => {
        try {
          await this.gcFamily(this.families[family], network, keep);
        } catch (err) {
          errors.push(err);
        }
      }),
    );
    if (errors.length) throw wrapError(`garbage-collect masquerade rules of network "${network}"`, errors[0]);
  }

  private async gcFamily(fam: XtablesFamily, network: string, keep: Set<string>): Promise<void> {
    const lines = await fam.save('nat');
    const stale = new Set<string>();
    for (const line of lines) {
      const m = line.match(/^-A (CTNET-M-[0-9A-F]{20}) /);
      if (!m?.[1] || keep.has(m[1]) || stale.has(m[1])) continue;
      const owner = parseAttachmentComment(commentOf(line) ?? '');
      // Only chains provably ours and of this network: the comment must hash to the chain's own name.
      if (owner?.key.network === network && masqChainName(owner.key) === m[1]) stale.add(m[1]);
    }
    if (!stale.size) return;
    const batch: string[] = [];
    for (const line of lines) {
      const target = line.match(/ -j (CTNET-M-[0-9A-F]{20})$/)?.[1];
      if (target && stale.has(target) && line.startsWith(`-A ${xtablesChains.postrouting} `)) batch.push(`-D ${line.slice(3)}`);
    }
    for (const chain of stale) batch.push(`-F ${chain}`, `-X ${chain}`);
    log.info({ family: fam.family, network, chains: [...stale] }, 'removing stale masquerade chains');
    await fam.restore({ nat: batch });
  }
}
