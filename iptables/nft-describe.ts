/**
 * What the nftables backend answers to `describe`: the rules of every nft table with their counters, and the
 * elements of our own sets as rules (an attachment's state lives there: nft-sets.ts), each with its owner.
 */
import { ruleOwner } from './attachment.js';
import { nftNames } from './nft-base.js';
import type { FirewallRule } from './types.js';

/**
 * An element of one of our sets as a rule line (chain `@<set>`): the DNAT maps read as the rule they stand for
 * (`tcp dport 8080 dnat ip to 10.22.0.5:80 comment "…"`), so searches for DNAT rules and comments find them.
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

/** Parses `nft list ruleset`: rules with their chain context, and the elements of our table's sets. */
export function parseNftRuleset(text: string): FirewallRule[] {
  const out: FirewallRule[] = [];
  let family: FirewallRule['family'] = 'inet';
  let table = '';
  let chain = '';
  let set = '';
  let elements: string | undefined;
  let position = 0;
  const push = (chainName: string, rule: string, counter?: RegExpExecArray | null) => {
    const comment = /comment "([^"]*)"/.exec(rule)?.[1];
    const owner = comment !== undefined && table === nftNames.table ? ruleOwner(comment) : undefined;
    out.push({
      backend: 'nftables',
      family,
      table,
      chain: chainName,
      rule,
      packets: Number(counter?.[1] ?? 0),
      bytes: Number(counter?.[2] ?? 0),
      position: ++position,
      ...(owner && { owner }),
    });
  };
  const pushElements = (text: string) => {
    for (const e of splitElements(text.replace(/^.*?\{/, '').replace(/\}$/, ''))) push(`@${set}`, elementRule(set, e));
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (elements !== undefined) {
      elements += ` ${line}`;
      if (!line.endsWith('}')) continue;
      pushElements(elements);
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
      if (table === nftNames.table && line.startsWith('elements = {')) {
        if (line.endsWith('}')) pushElements(line);
        else elements = line;
      }
      continue;
    }
    if (!chain || !line || line === '}' || line.startsWith('type ') || line.startsWith('policy ')) continue;
    push(chain, line, /counter packets (\d+) bytes (\d+)/.exec(line));
  }
  return out;
}
