/**
 * The node rules (node-rules.ts) for the iptables backend: two chains of their own, each reached by one jump and
 * rebuilt whole in one iptables-restore batch (declaring an existing chain in a --noflush batch flushes it):
 *
 *   nat    POSTROUTING -j CTNET-NODE-MASQ
 *          CTNET-NODE-MASQ -s <cluster> -d <cluster> -j RETURN
 *          CTNET-NODE-MASQ -s <subnet> ! -d 224.0.0.0/4 -j MASQUERADE --random-fully
 *   filter FORWARD -j CTNET-NODE-FWD
 *          CTNET-NODE-FWD -s <cluster> -j ACCEPT, -d <cluster> -j ACCEPT
 */
import { canonicalNodeRules, changeNodeRules, type NodeRulesSpec } from './node-rules.js';
import type { XtablesFamily } from './xtables-family.js';

/** Chain names the kernel sees: part of ctnet's on-host contract (iptables/README.md). */
export const xtablesNodeChains = { masq: 'CTNET-NODE-MASQ', forward: 'CTNET-NODE-FWD' } as const;

const jumpComment = '-m comment --comment "ctnet node"';
/** Per table: the built-in chain, our chain, and the jump between them (restore syntax without the verb). */
const places = [
  { table: 'nat', builtin: 'POSTROUTING', chain: xtablesNodeChains.masq },
  { table: 'filter', builtin: 'FORWARD', chain: xtablesNodeChains.forward },
].map((p) => ({ ...p, jump: `${p.builtin} ${jumpComment} -j ${p.chain}` }));

export class XtablesNodeRules {
  constructor(private readonly v4: XtablesFamily) {}

  async setup(spec: NodeRulesSpec): Promise<void> {
    const { clusterCidr, subnet } = canonicalNodeRules(spec);
    await changeNodeRules('set up', () => this.replace(clusterCidr, subnet));
  }

  private async replace(clusterCidr: string, subnet: string): Promise<void> {
    const { masq, forward } = xtablesNodeChains;
    await this.v4.restore({
      nat: [
        `:${masq} - [0:0]`,
        `-A ${masq} -s ${clusterCidr} -d ${clusterCidr} -j RETURN`,
        `-A ${masq} -s ${subnet} ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`,
      ],
      filter: [`:${forward} - [0:0]`, `-A ${forward} -s ${clusterCidr} -j ACCEPT`, `-A ${forward} -d ${clusterCidr} -j ACCEPT`],
    });
    // The jumps go first in their built-in chains: a host's own rules (a DROP policy's exceptions) come after.
    for (const p of places) {
      if (!(await this.v4.check(p.table, p.jump))) await this.v4.restore({ [p.table]: [`-I ${p.jump}`] });
    }
  }

  /** Every copy of the jumps, then the chains, one batch per table; nothing when nothing is there. */
  teardown(): Promise<void> {
    return changeNodeRules('tear down', () => this.remove());
  }

  private async remove(): Promise<void> {
    for (const p of places) {
      const own = await this.v4.listChain(p.table, p.chain, true);
      const jumps = ((await this.v4.listChain(p.table, p.builtin)) ?? []).filter((l) => l.endsWith(`-j ${p.chain}`));
      const lines = jumps.map((l) => l.replace(/^-A /, '-D '));
      if (own) lines.push(`-F ${p.chain}`, `-X ${p.chain}`);
      if (lines.length) await this.v4.restore({ [p.table]: lines });
    }
  }

  /** The chains' rules and the jumps to them, as `iptables -S` prints them. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const p of places) {
      out.push(...((await this.v4.listChain(p.table, p.builtin)) ?? []).filter((l) => l.endsWith(`-j ${p.chain}`)));
      out.push(...((await this.v4.listChain(p.table, p.chain)) ?? []));
    }
    return out;
  }
}
