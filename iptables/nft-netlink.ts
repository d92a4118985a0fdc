/**
 * nf_tables set elements over nfnetlink, without nft: an attachment's whole firewall state is a few set and map
 * elements (nftables.ts), and adding or deleting them this way costs the same with a thousand attachments as with
 * none. nft 1.0.x reads the table into its cache before it evaluates a command that names a set, and for interval
 * sets every element of the set: 4 ms per change at 1000 attachments, against ~0.1 ms here. Tables, sets and
 * chains are still made with nft scripts (rarely: once per host, or when something is missing).
 *
 * Element layout on the wire (include/uapi/linux/netfilter/nf_tables.h): a key is the concatenation of its fields,
 * each padded to 4 bytes (all our sets are hash sets: a key, never a range); the comment is nftnl
 * userdata (type 0, NUL-terminated), which `nft list` prints as `comment "…"`.
 */
import {
  AttrWriter,
  CtnetError,
  cString,
  ErrorCode,
  type NetlinkError,
  type NetlinkPart,
  NLA_F_NESTED,
  parseAttrList,
  parseAttrs,
  RtnlSocket,
  threadNetnsKey,
} from '../core/index.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_GETSETELEM = 13;
const NFT_MSG_DELSETELEM = 14;
const NFPROTO_INET = 1;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_DUMP = 0x300;

const LIST_TABLE = 1;
const LIST_SET = 2;
const LIST_ELEMENTS = 3;
const LIST_ELEM = 1;
const ELEM_KEY = 1;
const ELEM_DATA = 2;
const ELEM_USERDATA = 6;
const DATA_VALUE = 1;
const UDATA_COMMENT = 0;

export interface SetElement {
  set: string;
  key: Buffer;
  /** The mapped value, for elements of data maps. */
  data?: Buffer;
  comment?: string;
}

export interface ElementOp {
  /** add: succeeds when an equal element exists; create: fails with EEXIST when any element has the key. */
  op: 'add' | 'create' | 'delete';
  element: SetElement;
}

/** A refused transaction: nothing of it was applied. `errno` names the kernel's reason for the first refusal. */
export class NftTransactionError extends Error {
  constructor(
    readonly errno: string,
    readonly element: SetElement,
    cause: NetlinkError,
  ) {
    super(`set ${element.set}: ${cause.message}`, { cause });
    this.name = 'NftTransactionError';
  }
}

function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  b.writeUInt16BE(resId, 2);
  return b;
}

function commentUserdata(comment: string): Buffer {
  const value = Buffer.from(`${comment}\0`);
  if (value.length > 255) throw new Error(`element comment too long: ${comment}`);
  return Buffer.concat([Buffer.from([UDATA_COMMENT, value.length]), value]);
}

/** Nests carry NLA_F_NESTED here, as libnftnl sends them. */
function elementAttr(w: AttrWriter, e: SetElement, withPayload: boolean): void {
  w.nest(LIST_ELEM | NLA_F_NESTED, (el) => {
    el.nest(ELEM_KEY | NLA_F_NESTED, (k) => k.bytes(DATA_VALUE, e.key));
    if (withPayload && e.data) el.nest(ELEM_DATA | NLA_F_NESTED, (d) => d.bytes(DATA_VALUE, e.data as Buffer));
    if (withPayload && e.comment !== undefined) el.bytes(ELEM_USERDATA, commentUserdata(e.comment));
  });
}

function elementsBody(table: string, set: string, elements: Array<{ element: SetElement; withPayload: boolean }>): Buffer {
  const w = new AttrWriter().raw(nfgenmsg(NFPROTO_INET)).string(LIST_TABLE, table).string(LIST_SET, set);
  if (elements.length) {
    w.nest(LIST_ELEMENTS | NLA_F_NESTED, (list) => {
      for (const { element, withPayload } of elements) elementAttr(list, element, withPayload);
    });
  }
  return w.toBuffer();
}

function parseComment(udata: Buffer): string | undefined {
  let off = 0;
  while (off + 2 <= udata.length) {
    const type = udata.readUInt8(off);
    const len = udata.readUInt8(off + 1);
    const value = udata.subarray(off + 2, off + 2 + len);
    if (type === UDATA_COMMENT) return value.toString('utf8').replace(/\0+$/, '');
    off += 2 + len;
  }
  return undefined;
}

/** The elements in one NEWSETELEM message (a GET or dump answer). */
export function decodeElements(message: Buffer): SetElement[] {
  const top = parseAttrs(message, 4);
  const setName = top.get(LIST_SET);
  const set = setName ? cString(setName) : '';
  const out: SetElement[] = [];
  for (const [type, elem] of parseAttrList(top.get(LIST_ELEMENTS) ?? Buffer.alloc(0))) {
    if (type !== LIST_ELEM) continue;
    const a = parseAttrs(elem);
    const value = (t: number) => {
      const n = a.get(t);
      return n ? parseAttrs(n).get(DATA_VALUE) : undefined;
    };
    const key = value(ELEM_KEY);
    if (!key) continue;
    const e: SetElement = { set, key: Buffer.from(key) };
    const data = value(ELEM_DATA);
    if (data) e.data = Buffer.from(data);
    const udata = a.get(ELEM_USERDATA);
    const comment = udata ? parseComment(udata) : undefined;
    if (comment !== undefined) e.comment = comment;
    out.push(e);
  }
  return out;
}

const subsystem = (msg: number) => (NFNL_SUBSYS_NFTABLES << 8) | msg;

/** The ruleset generation a message was made in: the low 16 bits of the kernel's base sequence (nfgenmsg res_id). */
const generationOf = (message: Buffer) => message.readUInt16BE(2);

/** Listings of a set that a concurrent change interrupted are repeated up to this many times in all. */
const maxDumpAttempts = 20;

/** Listings made again because a change was committed while the kernel sent them (for tests and debugging). */
export const nftListingRepeats = { count: 0 };

/**
 * The socket of the process's own namespace, kept for the life of the process and shared by every NftElements: a
 * firewall is opened per CNI call, and in the daemon a socket per firewall would stay open for good.
 */
const ownSocket: { socket?: RtnlSocket } = {};

/** Set elements of one `inet` table. */
export class NftElements {
  constructor(readonly table: string) {}

  /**
   * Runs `fn` with a socket in the namespace the thread is in now: the kept one in the process's own namespace,
   * else one made for this request and closed after it (a socket holds its namespace alive).
   */
  private async withSocket<T>(fn: (s: RtnlSocket) => Promise<T>): Promise<T> {
    const netns = threadNetnsKey();
    if (netns !== 'own') {
      const s = new RtnlSocket(NETLINK_NETFILTER);
      try {
        return await fn(s);
      } finally {
        s.close();
      }
    }
    ownSocket.socket ??= new RtnlSocket(NETLINK_NETFILTER);
    const s = ownSocket.socket;
    if (s.netns !== netns) {
      throw new CtnetError(ErrorCode.internal, `the kept nftables socket belongs to namespace ${s.netns}, not ${netns}`);
    }
    return fn(s);
  }

  /** Applies `ops` as one nf_tables transaction: all or nothing. Throws NftTransactionError when refused. */
  async apply(ops: ElementOp[]): Promise<void> {
    if (!ops.length) return;
    const batchBody = nfgenmsg(0, NFNL_SUBSYS_NFTABLES);
    const parts: NetlinkPart[] = [{ type: NFNL_MSG_BATCH_BEGIN, body: batchBody, ack: false }];
    for (const { op, element } of ops) {
      const del = op === 'delete';
      parts.push({
        type: subsystem(del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM),
        flags: del ? 0 : NLM_F_CREATE | (op === 'create' ? NLM_F_EXCL : 0),
        body: elementsBody(this.table, element.set, [{ element, withPayload: !del }]),
        ack: true,
      });
    }
    parts.push({ type: NFNL_MSG_BATCH_END, body: batchBody, ack: false });
    const outcomes = await this.withSocket((s) => s.batch(parts));
    const i = outcomes.findIndex((o) => o.error);
    const failed = outcomes[i]?.error;
    if (failed) throw new NftTransactionError(failed.code, (ops[i] as ElementOp).element, failed);
  }

  /** The element with `element`'s key (and key end), or undefined when the set has none (or does not exist). */
  async get(element: SetElement): Promise<SetElement | undefined> {
    try {
      const body = elementsBody(this.table, element.set, [{ element, withPayload: false }]);
      const replies = await this.withSocket((s) =>
        s.request(subsystem(NFT_MSG_GETSETELEM), 0, body, [subsystem(NFT_MSG_NEWSETELEM)]),
      );
      return replies.flatMap(decodeElements)[0];
    } catch (err) {
      if ((err as NetlinkError).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Several gets at once (one round trip's worth of waiting). */
  getAll(elements: SetElement[]): Promise<(SetElement | undefined)[]> {
    return Promise.all(elements.map((e) => this.get(e)));
  }

  /**
   * Every element of `set`, or undefined when the table or set does not exist. The kernel sends a large set in
   * several messages, each made when the previous one is read, and resumes by skipping as many elements as it has
   * sent: a change committed in between shifts the walk (a rehash reorders it), and elements present all along
   * are left out or sent twice. Each message carries the ruleset generation it was made in, so a dump that spans
   * a change is made again.
   */
  async dump(set: string): Promise<SetElement[] | undefined> {
    const body = elementsBody(this.table, set, []);
    for (let attempt = 1; ; attempt++) {
      let replies: Buffer[];
      try {
        replies = await this.withSocket((s) =>
          s.request(subsystem(NFT_MSG_GETSETELEM), NLM_F_DUMP, body, [subsystem(NFT_MSG_NEWSETELEM)]),
        );
      } catch (err) {
        if ((err as NetlinkError).code === 'ENOENT') return undefined;
        throw err;
      }
      const generation = replies[0] && generationOf(replies[0]);
      if (replies.every((r) => generationOf(r) === generation)) return replies.flatMap(decodeElements);
      nftListingRepeats.count++;
      if (attempt === maxDumpAttempts) {
        throw new CtnetError(ErrorCode.tryAgainLater, `set ${set} changed during each of ${maxDumpAttempts} attempts to list it`);
      }
    }
  }
}
