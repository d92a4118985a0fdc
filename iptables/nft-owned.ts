/**
 * An attachment's elements in the nftables backend's sets: installed, removed, checked and collected as one unit,
 * identified by the attachment's comment on each element. The common case touches only the attachment's own
 * elements (a create or a lookup by key: constant cost however many attachments exist); anything unexpected (no
 * table yet, an element left by an earlier ADD of the same attachment or by a stale one) makes the kernel refuse the
 * change, which then changes nothing, and the slow path lists the sets, repairs the base and tries again.
 */
import { log } from '../core/index.js';
import { parseAttachmentComment } from './attachment.js';
import { type ElementOp, type NftElements, NftTransactionError, type SetElement } from './nft-netlink.js';
import { describeElement, sameElement } from './nft-sets.js';
import type { AttachmentKey } from './types.js';

/** Two elements that cannot both exist: same set and key. */
function clashes(a: SetElement, b: SetElement): boolean {
  return a.set === b.set && a.key.equals(b.key);
}

export class OwnedElements {
  constructor(
    private readonly elements: NftElements,
    /** Makes the table, its sets and its base chains (an nft script); run before the slow path retries. */
    private readonly ensureBase: () => Promise<void>,
  ) {}

  private async dumpAll(sets: readonly string[]): Promise<SetElement[]> {
    const out: SetElement[] = [];
    for (const set of sets) out.push(...((await this.elements.dump(set)) ?? []));
    return out;
  }

  /**
   * Makes `want` the attachment's elements (`comment` names it): its earlier elements go, and an element of another
   * attachment with a clashing key is taken over (callers rule out live owners first: the portmap reservations, one
   * address per lease).
   */
  async install(want: SetElement[], comment: string, sets: readonly string[]): Promise<void> {
    if (!want.length) return;
    const creates = want.map((element): ElementOp => ({ op: 'create', element }));
    try {
      await this.elements.apply(creates);
      return;
    } catch (err) {
      if (!(err instanceof NftTransactionError)) throw err;
      log.debug({ err: err.message }, 'nft elements refused; listing the sets');
    }
    await this.ensureBase();
    const existing = await this.dumpAll(sets);
    const deletes: ElementOp[] = [];
    for (const e of existing) {
      const mine = e.comment === comment;
      const clash = want.some((w) => clashes(w, e));
      if (!mine && !clash) continue;
      if (!mine) log.warn({ element: describeElement(e), owner: e.comment }, 'taking over an element of a stale attachment');
      deletes.push({ op: 'delete', element: e });
    }
    await this.elements.apply([...deletes, ...creates]);
  }

  /**
   * Removes the attachment's elements predicted by `candidates` (keys from what DEL knows). 'removed' when every one
   * was found and was ours: that is all there is, since an ADD installs its elements in one transaction. 'none' when
   * none of them is ours; 'partial' otherwise (then nothing was removed: the caller lists the sets).
   */
  async removeKnown(comment: string, candidates: SetElement[]): Promise<'removed' | 'none' | 'partial'> {
    if (!candidates.length) return 'none';
    const found = await this.elements.getAll(candidates);
    const ours = found.filter((e): e is SetElement => e?.comment === comment);
    if (!ours.length) return 'none';
    if (ours.length !== candidates.length) return 'partial';
    // Re-adding an element with the same value is a no-op that fails when it changed since the lookup: then nothing
    // is deleted and the listing decides.
    const ops = ours.flatMap((element): ElementOp[] => [
      ...(element.data ? [{ op: 'add' as const, element }] : []),
      { op: 'delete', element },
    ]);
    try {
      await this.elements.apply(ops);
      return 'removed';
    } catch (err) {
      if (!(err instanceof NftTransactionError)) throw err;
      return 'partial';
    }
  }

  /** Removes every element of `sets` whose comment is `comment` (lists the sets). True when there was one. */
  async removeListed(comment: string, sets: readonly string[]): Promise<boolean> {
    const ours = (await this.dumpAll(sets)).filter((e) => e.comment === comment);
    await this.elements.apply(ours.map((element) => ({ op: 'delete', element })));
    return ours.length > 0;
  }

  /** The first of `want` that is missing, points elsewhere or belongs to someone else; undefined when all are in. */
  async firstMissing(want: SetElement[], comment: string): Promise<SetElement | undefined> {
    const found = await this.elements.getAll(want);
    return want.find((w, i) => {
      const f = found[i];
      return !f || f.comment !== comment || !sameElement(f, w);
    });
  }

  /** Removes the elements of `kind` on `network` whose attachment is not in `keep` (attachment hash → true). */
  async collect(network: string, kind: string, sets: readonly string[], isValid: (key: AttachmentKey) => boolean) {
    const stale = (await this.dumpAll(sets)).filter((e) => {
      const owner = e.comment ? parseAttachmentComment(e.comment) : undefined;
      return owner?.kind === kind && owner.key.network === network && !isValid(owner.key);
    });
    if (stale.length) log.info({ network, kind, elements: stale.length }, 'removing elements of stale attachments');
    await this.elements.apply(stale.map((element) => ({ op: 'delete', element })));
  }
}
