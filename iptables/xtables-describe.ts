/** What the iptables backend answers to `describe`: every table of both families with counters, and what of it is ours. */
import { ruleOwner } from './attachment.js';
import type { Family } from './cidr.js';
import type { FirewallChain, FirewallRule } from './types.js';
import { commentOf } from './xtables-family.js';

/** Parses `iptables-save -c` output of one family. */
export function parseIptablesSave(text: string, family: Family): { rules: FirewallRule[]; chains: FirewallChain[] } {
  const rules: FirewallRule[] = [];
  const chains: FirewallChain[] = [];
  const positions = new Map<string, number>();
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      continue;
    }
    const chain = /^:(\S+) (\S+) \[(\d+):(\d+)\]/.exec(line);
    if (chain) {
      chains.push({
        family,
        table,
        name: chain[1] as string,
        policy: chain[2] as string,
        packets: Number(chain[3]),
        bytes: Number(chain[4]),
      });
      continue;
    }
    const rule = /^(?:\[(\d+):(\d+)\] )?-A (\S+) ?(.*)$/.exec(line);
    if (rule) {
      const name = rule[3] as string;
      const key = `${table}\0${name}`;
      const position = (positions.get(key) ?? 0) + 1;
      positions.set(key, position);
      const text = rule[4] ?? '';
      const owner = ruleOwner(commentOf(text) ?? '');
      rules.push({
        backend: 'iptables',
        family,
        table,
        chain: name,
        rule: text,
        packets: Number(rule[1] ?? 0),
        bytes: Number(rule[2] ?? 0),
        position,
        ...(owner && { owner }),
      });
    }
  }
  return { rules, chains };
}
