/**
 * The firewall for the debugger: what each backend describes (every rule with its packet counters and, for ours, the
 * attachment or network it belongs to), the jump graph of each table, and searches such as "the DNAT rule for this
 * host port". Read-only: changing rules, and reading them from the kernel, is iptables/'s job.
 */
import { type FirewallChain, type FirewallRule, type FirewallState, openFirewall } from '../iptables/index.js';

export type IpFamily = 4 | 6;

/** A rule (or an element of one of ctnet's sets) as the backend describes it. */
export type RuleLine = FirewallRule;

/** One family's rules and chains of the iptables backend. */
export interface XtablesDump {
  family: IpFamily;
  rules: RuleLine[];
  chains: FirewallChain[];
}

/**
 * What a backend answers to `describe` in the current namespace; undefined when it is not installed here or cannot
 * be read (the debugger shows what it can).
 */
export async function describeFirewall(backend: 'iptables' | 'nftables'): Promise<FirewallState | undefined> {
  const firewall = await openFirewall(backend).catch(() => undefined);
  return firewall?.describe().catch(() => undefined);
}

/** One family's part of the iptables backend's state (empty without iptables). */
export function xtablesDump(state: FirewallState | undefined, family: IpFamily): XtablesDump {
  return {
    family,
    rules: state?.rules.filter((r) => r.family === family) ?? [],
    chains: state?.chains.filter((c) => c.family === family) ?? [],
  };
}

/** Chains reachable from `start` in one table by following -j/-g jumps (conditions ignored). */
export function reachableChains(dump: XtablesDump, table: string, start: string): Set<string> {
  const seen = new Set<string>([start]);
  const queue = [start];
  while (queue.length) {
    const chain = queue.shift() as string;
    for (const r of dump.rules) {
      if (r.table !== table || r.chain !== chain) continue;
      const target = / -[jg] (\S+)/.exec(` ${r.rule}`)?.[1];
      if (target && !seen.has(target) && dump.chains.some((c) => c.table === table && c.name === target)) {
        seen.add(target);
        queue.push(target);
      }
    }
  }
  return seen;
}

/** Whether an iptables rule's destination-port match covers `port`. */
export function ruleMatchesPort(rule: string, port: number): boolean {
  for (const m of rule.matchAll(/--(?:dport|destination-ports?|dports) (\S+)/g)) {
    for (const part of (m[1] as string).split(',')) {
      const [lo, hi] = part.split(':').map(Number);
      if (lo !== undefined && port >= lo && port <= (hi ?? lo)) return true;
    }
  }
  return false;
}

/** The DNAT target (`ip:port`) of a rule, iptables or nft syntax. */
export function dnatTarget(rule: string): string | undefined {
  return /--to-destination (\S+)/.exec(rule)?.[1] ?? /\bdnat (?:ip6? )?to (\S+)/.exec(rule)?.[1];
}

/** The rules that mention an address (as a /32, a DNAT target or an nft match). */
export function rulesMentioning(rules: readonly RuleLine[], address: string): RuleLine[] {
  const escaped = address.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`(^|[\\s\\[])${escaped}(\\]|/|:|\\s|$)`);
  return rules.filter((r) => pattern.test(r.rule));
}
