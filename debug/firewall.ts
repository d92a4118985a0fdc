/**
 * Reading the firewall for the debugger: every rule with its packet counters (iptables-save -c, both
 * families; nft rules with counters), the jump graph of each table, and searches such as "the DNAT
 * rule for this host port". Read-only: changing rules is iptables/'s job.
 */
import { run } from '../core/index.js';
import { findProgram } from '../iptables/index.js';

export type IpFamily = 4 | 6;

export interface RuleLine {
  backend: 'iptables' | 'nftables';
  family: IpFamily | 'inet';
  table: string;
  chain: string;
  /** The rule in save syntax without the `-A CHAIN` prefix (iptables) or nft's statement text. */
  rule: string;
  packets: number;
  bytes: number;
  /** 1-based position within its chain (iptables numbering). */
  position: number;
}

export interface ChainInfo {
  family: IpFamily;
  table: string;
  name: string;
  /** Built-in chains have a policy; user chains have '-'. */
  policy: string;
  packets: number;
  bytes: number;
}

export interface XtablesDump {
  family: IpFamily;
  rules: RuleLine[];
  chains: ChainInfo[];
}

/** Parses `iptables-save -c` output. */
export function parseIptablesSave(text: string, family: IpFamily): XtablesDump {
  const rules: RuleLine[] = [];
  const chains: ChainInfo[] = [];
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
      rules.push({
        backend: 'iptables',
        family,
        table,
        chain: name,
        rule: rule[4] ?? '',
        packets: Number(rule[1] ?? 0),
        bytes: Number(rule[2] ?? 0),
        position,
      });
    }
  }
  return { family, rules, chains };
}

/** `iptables-save -c` (or ip6tables-save) in `netns` (undefined: here); empty when the tool is missing. */
export async function readXtables(family: IpFamily, netns?: string): Promise<XtablesDump> {
  const tool = family === 4 ? 'iptables-save' : 'ip6tables-save';
  const args = netns ? [`--net=${netns}`, tool, '-c'] : ['-c'];
  const r = await run(netns ? 'nsenter' : tool, args, { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined);
  return parseIptablesSave(r?.code === 0 ? r.stdout : '', family);
}

/**
 * An element of one of ctnet's sets as a rule line (chain `@<set>`): the DNAT maps read as the rule they stand
 * for (`tcp dport 8080 dnat ip to 10.22.0.5:80 comment "…"`), so searches for DNAT rules and comments find them.
 */
export function elementRule(set: string, element: string): string {
  const m = /^(.*?)(?: (comment "[^"]*"))?(?: : (.*))?$/.exec(element.trim());
  const key = (m?.[1] ?? '').split(' . ');
  const comment = m?.[2] ? ` ${m[2]}` : '';
  const data = m?.[3]?.split(' . ');
  const fwd = /^fwd([46])(-addr)?$/.exec(set);
  if (!fwd || !data || data.length !== 2) return `${element.trim()}`;
  const ip = fwd[1] === '6' ? 'ip6' : 'ip';
  const [addr, proto, port] = fwd[2] ? key : [undefined, ...key];
  const to = ip === 'ip6' ? `[${data[0]}]:${data[1]}` : `${data[0]}:${data[1]}`;
  return `${addr ? `${ip} daddr ${addr} ` : ''}${proto} dport ${port} dnat ${ip} to ${to}${comment}`;
}

/** The elements of an `elements = { … }` text, split at commas outside quotes. */
export function splitElements(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur);
  return out.map((e) => e.replace(/\s+/g, ' ').trim()).filter(Boolean);
}

/**
 * nft rules with their chain context, and the elements of ctnet's own sets as rules (an attachment's state lives
 * there: iptables/nft-sets.ts); empty when nft is missing or the ruleset is empty.
 */
export async function readNftRules(netns?: string): Promise<RuleLine[]> {
  // Found as the firewall finds it: under `npx`/`npm test`, PATH starts with node_modules/.bin, which holds an
  // unrelated `nft` (a file tracer) that prints nothing and exits 0.
  const nft = findProgram('nft');
  if (!nft) return [];
  const args = netns ? [`--net=${netns}`, nft, 'list', 'ruleset'] : ['list', 'ruleset'];
  const r = await run(netns ? 'nsenter' : nft, args, { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined);
  if (r?.code !== 0) return [];
  const out: RuleLine[] = [];
  let family: RuleLine['family'] = 'inet';
  let table = '';
  let chain = '';
  let set = '';
  let elements: string | undefined;
  let position = 0;
  const push = (chainName: string, rule: string, counter?: RegExpExecArray | null) =>
    out.push({
      backend: 'nftables',
      family,
      table,
      chain: chainName,
      rule,
      packets: Number(counter?.[1] ?? 0),
      bytes: Number(counter?.[2] ?? 0),
      position: ++position,
    });
  for (const raw of r.stdout.split('\n')) {
    const line = raw.trim();
    if (elements !== undefined) {
      elements += ` ${line}`;
      if (!line.endsWith('}')) continue;
      for (const e of splitElements(elements.replace(/^.*?\{/, '').replace(/\}$/, ''))) push(`@${set}`, elementRule(set, e));
      elements = undefined;
      continue;
    }
    const t = /^table (\S+) (\S+) \{/.exec(line);
    if (t) {
      family = t[1] === 'ip' ? 4 : t[1] === 'ip6' ? 6 : 'inet';
      table = t[2] as string;
      continue;
    }
    const c = /^chain (\S+) \{/.exec(line);
    if (c) {
      chain = c[1] as string;
      set = '';
      position = 0;
      continue;
    }
    const s = /^(?:set|map) (\S+) \{/.exec(line);
    if (s) {
      set = s[1] as string;
      chain = '';
      position = 0;
      continue;
    }
    if (set) {
      if (table === 'ctnet' && line.startsWith('elements = {')) {
        elements = line;
        if (line.endsWith('}')) {
          for (const e of splitElements(line.replace(/^.*?\{/, '').replace(/\}$/, ''))) push(`@${set}`, elementRule(set, e));
          elements = undefined;
        }
      }
      continue;
    }
    if (!chain || !line || line === '}' || line.startsWith('type ') || line.startsWith('policy ')) continue;
    push(chain, line, /counter packets (\d+) bytes (\d+)/.exec(line));
  }
  return out;
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
