/**
 * Port forwards with extra match conditions (`conditionsV4`/`conditionsV6`) on the nftables backend, which a map
 * element cannot carry, and the teardown of attachments made before forwards became map elements. Per attachment: one chain dnat-<hash> holding, per mapping and family, the
 * masquerade marks (hairpin from the container subnet, localhost from 127/8) combined with the DNAT, and one map
 * element per (host address,) protocol and port pointing at that chain. Element keys are rebuilt from the chain's own
 * rules at teardown. The kernel refuses a second element with the same key, so a stale attachment's element is
 * taken over explicitly (the plugin's reservation store has already ruled out a live conflict).
 */
import { CtnetError, ErrorCode, log, wrapError } from '../core/index.js';
import { attachmentComment, attachmentLabel, validateKey } from './attachment.js';
import type { Family } from './cidr.js';
import { type NormalizedForwards, normalizeForwards, parseHostIP } from './forwards.js';
import {
  baseLines,
  ipKeyword,
  nftApply,
  nftCommentArg,
  nftDnatChainName,
  nftMasqMark,
  nftNames,
  staleChains,
  T,
  tryFastPath,
} from './nft-base.js';
import type { NftExec } from './nft-exec.js';
import type { AttachmentKey, KnownForwards, PortForwardSpec } from './types.js';

/** A map element: which map, its key text, as nft prints it. */
interface ElementRef {
  map: string;
  key: string;
}

function elementOf(family: Family | undefined, hostIP: string | undefined, protocol: string, port: number): ElementRef {
  if (hostIP && family) return { map: nftNames.hostportAddrMap[family], key: `${hostIP} . ${protocol} . ${port}` };
  return { map: nftNames.hostportMap, key: `${protocol} . ${port}` };
}

/** Rules of the attachment's chain, in the form `nft list` prints them (CHECK compares lines). */
function renderRules(comment: string, n: NormalizedForwards): { rules: string[]; elements: ElementRef[] } {
  const rules: string[] = [];
  const elements = new Map<string, ElementRef>();
  const c = nftCommentArg(comment);
  const mark = `meta mark set meta mark | ${nftMasqMark}`;
  for (const family of [4, 6] as const) {
    const fam = n.families[family];
    if (!fam) continue;
    const ip = ipKeyword[family];
    const cond = n.conditions[family].length ? ` ${n.conditions[family].join(' ')}` : '';
    for (const f of fam.forwards) {
      const dst = f.hostIP ? `${ip} daddr ${f.hostIP} ` : '';
      const port = `${f.protocol} dport ${f.hostPort}${cond}`;
      const to = family === 4 ? `${fam.target.address}:${f.containerPort}` : `[${fam.target.address}]:${f.containerPort}`;
      const dnat = `dnat ${ip} to ${to} ${c}`;
      if (n.snat) {
        const src = n.masqAll ? '' : `${ip} saddr ${fam.target.subnet} `;
        rules.push(`${dst}${src}${port} ${mark} ${dnat}`);
        if (family === 4 && !n.masqAll) rules.push(`${dst}ip saddr 127.0.0.0/8 ${port} ${mark} ${dnat}`);
      }
      rules.push(`${dst}${port} ${dnat}`);
      const e = elementOf(family, f.hostIP, f.protocol, f.hostPort);
      elements.set(`${e.map} ${e.key}`, e);
    }
  }
  return { rules, elements: [...elements.values()] };
}

/** Element keys recovered from a listed dnat chain. */
function elementsInChain(text: string): ElementRef[] {
  const out = new Map<string, ElementRef>();
  for (const line of text.split('\n')) {
    if (!/ dnat ip6? to /.test(line)) continue;
    const port = line.match(/\b(tcp|udp|sctp) dport (\d+)/);
    if (!port?.[1] || !port[2]) continue;
    const daddr = line.match(/\b(ip6?) daddr (\S+)/);
    const family: Family | undefined = daddr ? (daddr[1] === 'ip6' ? 6 : 4) : undefined;
    const e = elementOf(family, daddr?.[2], port[1], Number(port[2]));
    out.set(`${e.map} ${e.key}`, e);
  }
  return [...out.values()];
}

/** Every element of the hostport maps in a listing: "map key" → chain. */
function hostportElements(text: string, map: string): Map<string, string> {
  const out = new Map<string, string>();
  const block = text.match(new RegExp(`map ${map} \\{[\\s\\S]*?\\n\\t\\}`))?.[0] ?? '';
  const body = block.match(/elements = \{([\s\S]*?)\}/)?.[1] ?? '';
  for (const m of body.matchAll(/([^,{}]+?) : (?:jump|goto) ([A-Za-z0-9_-]+)/g)) {
    out.set((m[1] ?? '').replace(/\s+/g, ' ').trim(), m[2] ?? '');
  }
  return out;
}

/**
 * Element keys of what DEL knows the attachment published (its reservations). A damaged record gives none: the fast
 * teardown then fails on the chain its elements still use, and the full path runs.
 */
function knownElements(known: KnownForwards): ElementRef[] {
  try {
    return known.forwards.map((f) => {
      const host = parseHostIP(f.hostIP);
      return elementOf(host.family, host.address, f.protocol, f.hostPort);
    });
  } catch {
    return [];
  }
}

/** Removes `elements` if they point at `chain` (add-then-delete: no error when one is absent). */
function removalLines(chain: string, elements: ElementRef[]): string[] {
  return elements.flatMap((e) => [
    `add element ${T} ${e.map} { ${e.key} : jump ${chain} }`,
    `delete element ${T} ${e.map} { ${e.key} }`,
  ]);
}

/** The fast setup: a chain that must not exist yet, its rules and its elements, without the base (see tryFastPath). */
function createLines(chain: string, rules: string[], elements: ElementRef[]): string[] {
  return [
    `create chain ${T} ${chain}`,
    ...rules.map((r) => `add rule ${T} ${chain} ${r}`),
    ...elements.map((e) => `add element ${T} ${e.map} { ${e.key} : jump ${chain} }`),
  ];
}

// A function, not a constant: nftables.ts and this module import each other.
const allHostportMaps = () => [nftNames.hostportMap, nftNames.hostportAddrMap[4], nftNames.hostportAddrMap[6]];

/** A port-forward spec as the nftables backend takes it: the mark options are the iptables backend's. */
export function normalizeNftForwards(spec: PortForwardSpec): NormalizedForwards {
  const n = normalizeForwards(spec);
  if (n.externalSetMarkChain || n.markBit !== 13) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      'invalid port-forward options: markMasqBit and externalSetMarkChain apply to the iptables backend only',
    );
  }
  return n;
}

export class NftChainForwards {
  constructor(private readonly exec: NftExec) {}

  /** Current owners (chain names) of `elements`. */
  private async owners(elements: ElementRef[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const map of new Set(elements.map((e) => e.map))) {
      const text = (await this.exec.list(`list map ${T} ${map}`)) ?? '';
      for (const [key, chain] of hostportElements(text, map)) out.set(`${map} ${key}`, chain);
    }
    return out;
  }

  async setup(spec: PortForwardSpec): Promise<void> {
    const n = normalizeNftForwards(spec);
    const chain = nftDnatChainName(spec);
    const { rules, elements } = renderRules(attachmentComment('dnat', spec), n);
    try {
      if (rules.length && (await tryFastPath(this.exec, createLines(chain, rules, elements), 'port-forward setup'))) return;
      const existing = await this.exec.list(`list chain ${T} ${chain}`);
      const old = existing ? elementsInChain(existing) : [];
      const build = (takeOver: ElementRef[]) => {
        const lines = baseLines();
        for (const e of old) {
          lines.push(`add element ${T} ${e.map} { ${e.key} : jump ${chain} }`, `delete element ${T} ${e.map} { ${e.key} }`);
        }
        for (const e of takeOver) lines.push(`delete element ${T} ${e.map} { ${e.key} }`);
        lines.push(`add chain ${T} ${chain}`, `flush chain ${T} ${chain}`);
        if (!rules.length) return [...lines, `delete chain ${T} ${chain}`];
        lines.push(...rules.map((r) => `add rule ${T} ${chain} ${r}`));
        lines.push(...elements.map((e) => `add element ${T} ${e.map} { ${e.key} : jump ${chain} }`));
        return lines;
      };
      try {
        await nftApply(this.exec, build([]));
      } catch (err) {
        const owners = await this.owners(elements);
        const stale = elements.filter((e) => {
          const owner = owners.get(`${e.map} ${e.key}`);
          return owner !== undefined && owner !== chain;
        });
        if (!stale.length) throw err;
        log.warn({ chain, stale }, 'taking over host ports still claimed by a stale attachment');
        await nftApply(this.exec, build(stale));
      }
    } catch (err) {
      throw wrapError(`set up port forwards for ${attachmentLabel(spec)}`, err);
    }
  }

  /** True when the attachment had a chain. */
  async teardown(key: AttachmentKey, known?: KnownForwards): Promise<boolean> {
    validateKey(key);
    const chain = nftDnatChainName(key);
    const tail = [`flush chain ${T} ${chain}`, `delete chain ${T} ${chain}`];
    try {
      // Plain deletes: an element that is not there fails the fast path (add-then-delete would cost a validation).
      const deletes = (elements: ElementRef[]) => elements.map((e) => `delete element ${T} ${e.map} { ${e.key} }`);
      if (known && (await tryFastPath(this.exec, [...deletes(knownElements(known)), ...tail], 'port-forward teardown'))) {
        return true;
      }
      const existing = await this.exec.list(`list chain ${T} ${chain}`);
      if (!existing) return false;
      try {
        await nftApply(this.exec, [...removalLines(chain, elementsInChain(existing)), ...tail]);
      } catch (err) {
        log.info({ err, chain }, 'hostport elements differ from the chain; removing by listing the maps');
        const owners = await this.owners(allHostportMaps().map((map) => ({ map, key: '' })));
        const lines = [...owners]
          .filter(([, owner]) => owner === chain)
          .map(([mapKey]) => {
            const [map, ...keyParts] = mapKey.split(' ');
            return `delete element ${T} ${map} { ${keyParts.join(' ')} }`;
          });
        await nftApply(this.exec, [...lines, ...tail]);
      }
      return true;
    } catch (err) {
      throw wrapError(`tear down port forwards for ${attachmentLabel(key)}`, err);
    }
  }

  async check(spec: PortForwardSpec): Promise<void> {
    const n = normalizeNftForwards(spec);
    const chain = nftDnatChainName(spec);
    const { rules, elements } = renderRules(attachmentComment('dnat', spec), n);
    const fail = (what: string) =>
      new CtnetError(ErrorCode.internal, `failed to check port forwards for ${attachmentLabel(spec)}: ${what}`);
    if (!rules.length) return;
    const [existing, pre, out] = await Promise.all([
      this.exec.list(`list chain ${T} ${chain}`),
      this.exec.list(`list chain ${T} ${nftNames.prerouting}`),
      this.exec.list(`list chain ${T} ${nftNames.output}`),
    ]);
    if (!existing) throw fail(`chain ${nftNames.table}/${chain} is missing`);
    for (const [name, text] of [
      [nftNames.prerouting, pre],
      [nftNames.output, out],
    ] as const) {
      if (!text?.includes(`jump ${nftNames.hostports}`)) throw fail(`chain ${name} does not jump to ${nftNames.hostports}`);
    }
    const have = existing
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => / dnat ip6? to /.test(l));
    if (n.conditions[4].length || n.conditions[6].length) {
      if (have.length !== rules.length) throw fail(`chain ${chain} has ${have.length} rules, expected ${rules.length}`);
    } else {
      const missing = rules.filter((r) => !have.includes(r));
      if (missing.length) throw fail(`rules missing: ${missing.join('; ')}`);
    }
    const owners = await this.owners(elements);
    for (const e of elements) {
      if (owners.get(`${e.map} ${e.key}`) !== chain) throw fail(`map ${e.map} has no element "${e.key}" pointing at ${chain}`);
    }
  }

  async gc(network: string, valid: AttachmentKey[]): Promise<void> {
    validateKey({ network, containerId: 'x', ifname: 'x' });
    const keep = new Set(valid.map((k) => nftDnatChainName({ ...k, network })));
    try {
      const text = await this.exec.list(`list table ${T}`);
      if (!text) return;
      const stale = staleChains(text, network, keep, nftNames.dnatPrefix, nftDnatChainName);
      // GC also rewrites the base: the ADD fast path leaves base chains as it finds them.
      const lines: string[] = baseLines();
      for (const map of allHostportMaps()) {
        for (const [key, owner] of hostportElements(text, map)) {
          if (stale.has(owner)) lines.push(`delete element ${T} ${map} { ${key} }`);
        }
      }
      for (const chain of stale) lines.push(`flush chain ${T} ${chain}`, `delete chain ${T} ${chain}`);
      if (stale.size) log.info({ network, chains: [...stale] }, 'removing stale port-forward chains');
      await nftApply(this.exec, lines);
    } catch (err) {
      throw wrapError(`garbage-collect port forwards of network "${network}"`, err);
    }
  }
}
