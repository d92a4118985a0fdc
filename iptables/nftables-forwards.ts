/**
 * Port forwards on the nftables backend. An attachment's forwards are set and map elements only (nft-sets.ts): per
 * mapping and family, a DNAT element `proto . port : address . port` (the host address first in its key when the
 * mapping is limited to one); with snat, a hairpin element `host interface . proto . port` (connections that arrive
 * from the container's own subnet are marked for masquerade before DNAT) and, for IPv4, a localhost element; with
 * masqAll, one element that masquerades every DNATed connection to the container. All sets are hash sets looked up
 * by exact key (the kernel removes an element of an interval set of concatenations in time that grows with the
 * set: 3–17 ms at 1000 attachments), so an ADD or DEL never changes a rule and costs the same however many
 * containers publish ports. Mappings with extra match conditions, or hairpin without a known host interface, need
 * rules of their own: they keep a chain per attachment (nftables-chain-forwards.ts).
 */
import { CtnetError, ErrorCode, wrapError } from '../core/index.js';
import { attachmentComment, attachmentLabel, validateKey } from './attachment.js';
import { type NormalizedForwards, normalizeForwards } from './forwards.js';
import { nftNames, T } from './nft-base.js';
import type { NftExec } from './nft-exec.js';
import type { SetElement } from './nft-netlink.js';
import type { OwnedElements } from './nft-owned.js';
import {
  forwardElement,
  forwardSets,
  hairpinElement,
  localhostElement,
  markerElement,
  masqAllElement,
  nftSets,
} from './nft-sets.js';
import { NftChainForwards, normalizeNftForwards } from './nftables-chain-forwards.js';
import type { AttachmentKey, KnownForwards, PortForwardSpec, PortProtocol } from './types.js';

/**
 * The elements an attachment's forwards consist of (none when nothing is published), or undefined when they cannot
 * be elements: hairpin needs the host interface the container's subnet is on.
 */
function plannedElements(
  key: AttachmentKey,
  n: NormalizedForwards,
  hostInterface: string | undefined,
  comment: string,
): SetElement[] | undefined {
  const out: SetElement[] = [];
  const hairpins = new Map<string, SetElement>();
  for (const family of [4, 6] as const) {
    const fam = n.families[family];
    if (!fam) continue;
    for (const f of fam.forwards) {
      out.push(forwardElement({ family, ...f, target: fam.target.address }, comment));
      if (!n.snat || n.masqAll) continue;
      if (!hostInterface) return undefined;
      const host = f.hostIP ? { family, address: f.hostIP } : undefined;
      const e = hairpinElement(hostInterface, host, f.protocol, f.hostPort, comment);
      hairpins.set(`${e.set} ${e.key.toString('hex')}`, e);
    }
    if (n.snat && n.masqAll) out.push(masqAllElement(family, fam.target.address, comment));
    if (n.snat && !n.masqAll && family === 4) out.push(localhostElement(fam.target.address, comment));
  }
  out.push(...hairpins.values());
  return out.length ? [markerElement('dnat', key, comment), ...out] : [];
}

/**
 * The keys of what an ADD with the same configuration installed, from what DEL knows (the reservations' host
 * ports, prevResult's addresses): undefined when that is not enough to tell.
 */
function knownElements(key: AttachmentKey, known: KnownForwards, comment: string): SetElement[] | undefined {
  if (!known.addresses?.length || known.snat === undefined) return undefined;
  try {
    const n = normalizeForwards({
      ...key,
      containerAddresses: known.addresses,
      mappings: known.forwards.map((f) => ({
        protocol: f.protocol as PortProtocol,
        hostPort: f.hostPort,
        containerPort: 1,
        ...(f.hostIP !== undefined && { hostIP: f.hostIP }),
      })),
      snat: known.snat,
      masqAll: known.masqAll ?? false,
    });
    // Forward elements are found by key: DEL does not know the container port their value holds.
    return plannedElements(key, n, known.hostInterface, comment)?.map((e) => (e.data ? { set: e.set, key: e.key } : e));
  } catch {
    return undefined;
  }
}

export class NftForwards {
  private readonly chains: NftChainForwards;

  constructor(
    private readonly exec: NftExec,
    private readonly owned: OwnedElements,
  ) {
    this.chains = new NftChainForwards(exec);
  }

  private hasConditions(n: NormalizedForwards): boolean {
    return n.conditions[4].length > 0 || n.conditions[6].length > 0;
  }

  async setup(spec: PortForwardSpec): Promise<void> {
    const n = normalizeNftForwards(spec);
    const comment = attachmentComment('dnat', spec);
    const want = this.hasConditions(n) ? undefined : plannedElements(spec, n, spec.hostInterface, comment);
    if (!want) return this.chains.setup(spec);
    try {
      await this.owned.install(want, comment, forwardSets());
    } catch (err) {
      throw wrapError(`set up port forwards for ${attachmentLabel(spec)}`, err);
    }
  }

  async teardown(key: AttachmentKey, known?: KnownForwards): Promise<void> {
    validateKey(key);
    const comment = attachmentComment('dnat', key);
    try {
      const candidates = known && knownElements(key, known, comment);
      if (candidates) {
        const outcome = await this.owned.removeKnown(comment, candidates);
        if (outcome === 'removed') return;
        // Nothing of ours under those keys: a chain attachment (forwards with conditions)?
        if (outcome === 'none' && (await this.chains.teardown(key, known))) return;
      }
      if (await this.owned.removeListed(comment, forwardSets())) return;
      await this.chains.teardown(key);
    } catch (err) {
      throw wrapError(`tear down port forwards for ${attachmentLabel(key)}`, err);
    }
  }

  async check(spec: PortForwardSpec): Promise<void> {
    const n = normalizeNftForwards(spec);
    const comment = attachmentComment('dnat', spec);
    const want = this.hasConditions(n) ? undefined : plannedElements(spec, n, spec.hostInterface, comment);
    if (!want) return this.chains.check(spec);
    const fail = (what: string) =>
      new CtnetError(ErrorCode.internal, `failed to check port forwards for ${attachmentLabel(spec)}: ${what}`);
    if (!want.length) return;
    const [pre, out, hostports, post] = await Promise.all(
      [nftNames.prerouting, nftNames.output, nftNames.hostports, nftNames.postrouting].map((c) =>
        this.exec.list(`list chain ${T} ${c}`),
      ),
    );
    for (const [name, text] of [
      [nftNames.prerouting, pre],
      [nftNames.output, out],
    ] as const) {
      if (!text?.includes(`jump ${nftNames.hostports}`)) throw fail(`chain ${name} does not jump to ${nftNames.hostports}`);
    }
    for (const e of want) {
      if (e.set === nftSets.attachments) continue;
      const chain = e.set.startsWith('fwd') || e.set.startsWith('hairpin') ? hostports : post;
      if (!chain?.includes(`@${e.set}`)) throw fail(`no rule of the base chains looks up @${e.set}`);
    }
    const missing = await this.owned.firstMissing(want, comment);
    if (missing) throw fail(`an element of @${missing.set} is missing or points elsewhere`);
  }

  async gc(network: string, valid: AttachmentKey[]): Promise<void> {
    validateKey({ network, containerId: 'x', ifname: 'x' });
    const keep = new Set(valid.map((k) => attachmentComment('dnat', { ...k, network })));
    try {
      await this.owned.collect(network, 'dnat', forwardSets(), (key) => keep.has(attachmentComment('dnat', key)));
      await this.chains.gc(network, valid);
    } catch (err) {
      throw wrapError(`garbage-collect port forwards of network "${network}"`, err);
    }
  }
}
