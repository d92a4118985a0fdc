/**
 * The node rules (node-rules.ts) for the nftables backend, in a table of their own, `ip ctnet-node`, replaced
 * whole in one transaction (table deleted and declared again) and removed with the table. Apart from the
 * attachments' `inet ctnet` table because they have one owner (the node agent), one lifetime (node up to node
 * down) and are IPv4 only; flannel keeps its rules in a table of its own for the same reasons.
 *
 *   chain postrouting (nat, srcnat):  ip saddr <cluster> ip daddr <cluster> return
 *                                     ip saddr <subnet> ip daddr != 224.0.0.0/4 masquerade fully-random
 *   chain forward (filter):           ip saddr <cluster> accept;  ip daddr <cluster> accept
 *
 * An accept here ends the packet's walk through this table only: a drop in another table on the same hook (an
 * iptables FORWARD policy of DROP, through iptables-nft) still drops it. That is nftables' model; such a host
 * must allow the cluster CIDR in its own table too (docs/multi-node.md).
 */

import { nftApply } from './nft-base.js';
import type { NftExec } from './nft-exec.js';
import { canonicalNodeRules, changeNodeRules, type NodeRulesSpec } from './node-rules.js';

/** Names the kernel sees: part of ctnet's on-host contract (iptables/README.md). */
export const nftNodeNames = { table: 'ip ctnet-node', postrouting: 'postrouting', forward: 'forward' } as const;

const comment = (what: string) => `comment "ctnet node: ${what}"`;
/** Deleting a table that may be absent: declaring it first makes the delete always valid. */
const dropTable = [`add table ${nftNodeNames.table}`, `delete table ${nftNodeNames.table}`];

export class NftNodeRules {
  constructor(private readonly exec: NftExec) {}

  async setup(spec: NodeRulesSpec): Promise<void> {
    const { clusterCidr: c, subnet } = canonicalNodeRules(spec);
    const N = nftNodeNames;
    const script = [
      ...dropTable,
      `table ${N.table} {`,
      `  chain ${N.postrouting} {`,
      '    type nat hook postrouting priority srcnat; policy accept;',
      `    ip saddr ${c} ip daddr ${c} return ${comment('pod to pod, never NAT')}`,
      `    ip saddr ${subnet} ip daddr != 224.0.0.0/4 masquerade fully-random ${comment('pod off the cluster')}`,
      '  }',
      `  chain ${N.forward} {`,
      '    type filter hook forward priority filter; policy accept;',
      `    ip saddr ${c} accept ${comment('from the cluster')}`,
      `    ip daddr ${c} accept ${comment('to the cluster')}`,
      '  }',
      '}',
    ];
    await changeNodeRules('set up', () => nftApply(this.exec, script));
  }

  teardown(): Promise<void> {
    return changeNodeRules('tear down', () => nftApply(this.exec, dropTable));
  }

  /** The table's rules as `nft list` prints them (empty when there is no table). */
  async list(): Promise<string[]> {
    const text = await this.exec.list(`list table ${nftNodeNames.table}`);
    return (text ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^ip (saddr|daddr) /.test(l));
  }
}
