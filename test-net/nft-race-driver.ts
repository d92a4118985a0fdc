/**
 * Forces interleavings of the nftables backend with changes made by another process at a precise point, inside a
 * sandbox namespace: the test starts this file under `nsenter --net=/run/netns/<sandbox>` with `{scenario}` on stdin
 * and reads one JSON result. A change is forced while a listing of a set is under way by holding the event loop
 * (a synchronous `nft` run) just after the listing's request went out: the kernel has made the first part of its
 * answer and makes the rest only when it is read.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { openFirewall } from '../iptables/index.js';
import { type ElementOp, NftElements, nftListingRepeats, type SetElement } from '../iptables/nft-netlink.js';
import { refuseRootNetns } from './driver-guard.js';

refuseRootNetns('nft-race-driver');

const nftBin = '/usr/sbin/nft';
const table = 'ctnet';
const bridge = 'br0';
const key = (e: SetElement) => e.key.toString('hex');
const local4 = (e: SetElement) => `${[...e.key.subarray(0, 4)].join('.')} . "${bridge}"`;

/** Lets the request of a listing started just now reach the kernel (no I/O is awaited before it is sent). */
async function afterSend(): Promise<void> {
  for (let i = 0; i < 20; i++) await null;
}

async function masqueradeAttachments(prefix: string, n: number, base: number): Promise<void> {
  const fw = await openFirewall('nftables');
  for (let i = 0; i < n; i++) {
    const a = base + i;
    await fw.setupMasquerade({
      network: 'race',
      containerId: `${prefix}${i}`,
      ifname: 'eth0',
      addresses: [`10.9.${a >> 8}.${a & 255}/16`],
      hostInterface: bridge,
    });
  }
}

function nftDeleteLocal(e: SetElement): void {
  execFileSync(nftBin, ['delete', 'element', 'inet', table, 'masq-local4', `{ ${local4(e)} }`]);
}

const scenarios: Record<string, () => Promise<unknown>> = {
  /** A listing of masq-local4 (120 elements) while another process deletes the first element it sends. */
  async 'interrupted-listing'() {
    await masqueradeAttachments('c', 120, 0);
    const elements = new NftElements(table);
    const before = (await elements.dump('masq-local4')) ?? [];
    const listing = elements.dump('masq-local4');
    await afterSend();
    nftDeleteLocal(before[0] as SetElement);
    const listed = (await listing) ?? [];
    const present = (await elements.dump('masq-local4')) ?? [];
    const seen = new Set(listed.map(key));
    return {
      before: before.length,
      listed: listed.length,
      present: present.length,
      missing: present.filter((e) => !seen.has(key(e))).length,
      repeated: nftListingRepeats.count,
    };
  },
  /**
   * An attachment torn down without known addresses (it lists the sets to find its elements) while the other 199
   * attachments' masq-local4 elements are deleted by another process during its listing of that set (the storm of
   * DELs). It is the attachment listed last, so the kernel has not sent its element before the change.
   */
  async 'teardown-during-changes'() {
    await masqueradeAttachments('c', 200, 0);
    const elements = new NftElements(table);
    const order = (await elements.dump('masq-local4')) ?? [];
    const target = order.at(-1) as SetElement;
    const others = order.slice(0, -1);
    const containerId = /id=(\S+)/.exec(target.comment ?? '')?.[1] as string;
    const dump = NftElements.prototype.dump;
    NftElements.prototype.dump = async function (this: NftElements, set: string) {
      const listing = dump.call(this, set);
      if (set === 'masq-local4' && others.length) {
        await afterSend();
        const list = others.splice(0).map(local4).join(', ');
        execFileSync(nftBin, ['delete', 'element', 'inet', table, 'masq-local4', `{ ${list} }`]);
      }
      return listing;
    };
    const fw = await openFirewall('nftables');
    await fw.teardownMasquerade({ network: 'race', containerId, ifname: 'eth0' });
    NftElements.prototype.dump = dump;
    const left: string[] = [];
    for (const set of ['masq-src4', 'masq-local4', 'attachments']) {
      for (const e of (await elements.dump(set)) ?? [])
        if (e.comment?.includes(` id=${containerId} `)) left.push(`${set} ${e.comment}`);
    }
    return { left, repeated: nftListingRepeats.count };
  },
  /**
   * An attachment's teardown (with its address known, or listing the sets) at the point where it deletes the elements
   * it found as its own, and a new attachment that receives the same address (a stale owner's: its lease is gone)
   * and takes the elements over just before.
   */
  async 'takeover-during-teardown'() {
    const fw = await openFirewall('nftables');
    const old = { network: 'race', containerId: 'old', ifname: 'eth0' };
    const neu = { network: 'race', containerId: 'new', ifname: 'eth0' };
    const addresses = ['10.9.0.7/16'];
    await fw.setupMasquerade({ ...old, addresses, hostInterface: bridge });
    let tookOver = false;
    const apply = NftElements.prototype.apply;
    NftElements.prototype.apply = async function (this: NftElements, ops: ElementOp[]) {
      if (!tookOver && ops.some((o) => o.op === 'delete' && o.element.comment?.includes(' id=old '))) {
        tookOver = true;
        await fw.setupMasquerade({ ...neu, addresses, hostInterface: bridge });
      }
      return apply.call(this, ops);
    };
    let teardown = 'ok';
    try {
      await fw.teardownMasquerade(old, input.known ? addresses : undefined, bridge);
    } catch (err) {
      teardown = (err as Error).message;
    }
    NftElements.prototype.apply = apply;
    const elements = new NftElements(table);
    const state: string[] = [];
    for (const set of ['masq-src4', 'masq-local4', 'attachments']) {
      for (const e of (await elements.dump(set)) ?? []) state.push(`${set} ${e.comment}`);
    }
    return { tookOver, teardown, state };
  },
};

const input = JSON.parse(readFileSync(0, 'utf8')) as { scenario: string; known?: boolean };
const { scenario } = input;
const run = scenarios[scenario];
if (!run) throw new Error(`no such scenario: ${scenario}`);
process.stdout.write(`${JSON.stringify(await run())}\n`);
