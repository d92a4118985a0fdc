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

/** How many times a change made from a listing is tried, listing again after one refused. */
const maxListingAttempts = 3;

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
   * Makes `want` the attachment's elements (`comment` names it): its earlier elements go, and so does every element
   * of an attachment that holds a key it needs. Callers rule out live owners first (the portmap reservations, one
   * address per lease), so such an attachment is stale: all of it goes, its marker among them, which makes its own
   * teardown's delete (that always names its marker) refused instead of deleting the new owner's elements.
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
    for (let attempt = 1; ; attempt++) {
      const existing = await this.dumpAll(sets);
      const stale = new Set<string>();
      const deletes: ElementOp[] = [];
      for (const e of existing) {
        if (e.comment !== comment && e.comment !== undefined && want.some((w) => clashes(w, e))) stale.add(e.comment);
      }
      for (const e of existing) {
        const mine = e.comment === comment;
        const evicted = e.comment !== undefined && stale.has(e.comment);
        if (!mine && !evicted && !want.some((w) => clashes(w, e))) continue;
        if (!mine) log.warn({ element: describeElement(e), owner: e.comment }, 'taking over an element of a stale attachment');
        deletes.push({ op: 'delete', element: e });
      }
      try {
        await this.elements.apply([...deletes, ...creates]);
        return;
      } catch (err) {
        // An element listed was deleted meanwhile (its owner's teardown): list again.
        if (!(err instanceof NftTransactionError) || attempt === maxListingAttempts) throw err;
      }
    }
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
    // Re-adding an element with the same value is a no-op that fails when it changed since the lookup, and the marker
    // is gone when a new owner took the attachment's keys over since: then nothing is deleted and the listing decides.
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

  /** Removes the elements with the keys of `candidates`, whoever they belong to. */
  async removeKeys(candidates: SetElement[]): Promise<void> {
    const found = (await this.elements.getAll(candidates)).filter((e): e is SetElement => e !== undefined);
    await this.elements.apply(found.map((element) => ({ op: 'delete', element })));
  }

  /** Every element of `sets`. */
  list(sets: readonly string[]): Promise<SetElement[]> {
    return this.dumpAll(sets);
  }

  /**
   * Removes every element of `sets` whose comment is `comment` (lists the sets). True when there was one. A delete
   * refused because a new owner took elements over since the listing (it removed the marker too) lists again.
   */
  async removeListed(comment: string, sets: readonly string[]): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const ours = (await this.dumpAll(sets)).filter((e) => e.comment === comment);
      try {
        await this.elements.apply(ours.map((element) => ({ op: 'delete', element })));
        return ours.length > 0;
      } catch (err) {
        if (!(err instanceof NftTransactionError) || attempt === maxListingAttempts) throw err;
      }
    }
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
