/**
 * A request/response netlink socket over the native binding that the `netlink` package ships.
 *
 * Why not the package's JavaScript layer: loading it costs ~12 ms (node-gyp-build's prebuild
 * search and the generated struct code), against ~0.6 ms for the binary alone, and every CNI
 * call pays that. Its request() also resolves on the first reply message, leaving the ACK that
 * follows a GET as a stray. Here a request completes on its ACK, ERROR or DONE message.
 *
 * Any netlink protocol: rtnetlink (netns/) and nfnetlink (iptables/, whose nf_tables batches go
 * out as several messages in one datagram through batch()).
 *
 * The socket is bound to the network namespace of the thread that creates it (netns/switch.ts).
 * It holds the event loop only while a request is outstanding.
 */
import { dirname } from 'node:path';
import { errnoName, lazyRequire, lazyResolve } from './native.js';
import {
  encodeNetlinkMessage,
  NLM_F_ACK,
  NLM_F_ECHO,
  NLMSG_DONE,
  NLMSG_ERROR,
  netlinkMessages,
  parseNetlinkError,
} from './netlink-codec.js';
import { threadNetnsKey } from './thread-netns.js';

const NETLINK_ROUTE = 0;

/**
 * Sequence numbers, unique across every netlink socket of the process and starting at a random value.
 *
 * Why per process and not per socket: the kernel can put a message with another socket's sequence number on
 * ours. A delete that asks for an echo (NLM_F_ECHO) of a veth end makes the kernel echo the peer's removal too,
 * to the requester's port ID but in the peer's namespace; a socket of ours there that holds the same port ID (the
 * first socket a process makes in a namespace gets the process's pid as its port ID) receives it. With numbers
 * every socket started at 1, that message passed for the answer to its own first request: a lookup of a bridge
 * answered with a veth. No two requests of the process share a number, and other processes start elsewhere.
 */
let lastSeq = 1 + Math.floor(Math.random() * 0xfffffffe);

export function nextNetlinkSeq(): number {
  lastSeq = lastSeq >= 0xffffffff ? 1 : lastSeq + 1;
  return lastSeq;
}

/** Messages dropped because they were not an answer to a request we had outstanding (see RtnlSocket.receive). */
export const netlinkStrays = { count: 0 };

/**
 * The rtnetlink message types that may answer a request of `type` besides ACK, ERROR and DONE. rtnetlink lays out each object's types as NEW, DEL, GET, SET: a GET is answered with NEW, an echo
 * repeats the request's own type, and anything else asks only for an ACK.
 */
export function rtnlReplyTypes(type: number, flags: number): readonly number[] {
  if ((type & 3) === 2) return [type - 2];
  if (flags & NLM_F_ECHO) return (type & 3) === 3 ? [type - 3] : [type];
  return [];
}

/** A request the kernel rejected; `code` is the errno name so core's hasErrno() finds it. */
export class NetlinkError extends Error {
  readonly code: string;
  readonly errno: number;
  constructor(errno: number) {
    const name = errnoName(errno);
    super(`${errnoText[name] ?? 'rejected by the kernel'} (${name})`);
    this.name = 'NetlinkError';
    this.code = name;
    this.errno = Math.abs(errno);
  }
}

const errnoText: Record<string, string> = {
  EEXIST: 'already exists',
  ENODEV: 'no such device',
  ENOENT: 'not found',
  ESRCH: 'no such entry',
  EINVAL: 'invalid argument',
  EPERM: 'operation not permitted',
  EACCES: 'permission denied',
  EOPNOTSUPP: 'operation not supported',
  ENOTSUP: 'operation not supported',
  EBUSY: 'device or resource busy',
  EADDRNOTAVAIL: 'address not available',
  ENETUNREACH: 'network is unreachable',
  EHOSTUNREACH: 'no route to host',
  ERANGE: 'value out of range',
  EAFNOSUPPORT: 'address family not supported',
  ENOBUFS: 'no buffer space available',
  ENOSPC: 'no space left',
  EBADF: 'bad file descriptor',
};

/** What withNetlink's Netlink needs from a socket: one request → the payloads of the replies. */
export interface RequestSocket {
  /** The namespace the socket belongs to (core threadNetnsKey at its creation), when known. */
  readonly netns?: string;
  request(type: number, flags: number, body: Buffer): Promise<Buffer[]>;
  close(): void;
}

interface NativeNetlink {
  bind(port: number, groups: number): void;
  address(): { port: number; groups: number };
  send(port: number, groups: number, data: Buffer[], callback: (err?: Error) => void): void;
  close(): void;
  ref(): void;
  unref(): void;
}
type NativeNetlinkConstructor = new (
  protocol: number,
  msgBuffer: number,
  onMessage: (msg: Buffer, from: { port: number }) => void,
  onError: (err: Error) => void,
) => NativeNetlink;

let nativeConstructor: NativeNetlinkConstructor | undefined;

function loadNative(): NativeNetlinkConstructor {
  if (nativeConstructor) return nativeConstructor;
  type Binding = { NativeNetlink: NativeNetlinkConstructor };
  let binding: Binding;
  try {
    binding = lazyRequire(`netlink/prebuilds/${process.platform}-${process.arch}/node.napi.node`) as Binding;
  } catch {
    // No prebuild for this platform: the package built one from source; let its own loader find it.
    const nodeGypBuild = lazyRequire('node-gyp-build') as (dir: string) => Binding;
    binding = nodeGypBuild(dirname(lazyResolve('netlink/package.json')));
  }
  nativeConstructor = binding.NativeNetlink;
  return nativeConstructor;
}

/** One message of a batch. */
export interface NetlinkPart {
  type: number;
  flags?: number;
  body: Buffer;
  /** Ask for an answer (NLM_F_ACK). A part without one (nfnetlink's batch begin and end) counts only if it fails. */
  ack: boolean;
  /** The message types that may answer it before its ACK or DONE (default: rtnlReplyTypes on rtnetlink, else any). */
  replyTypes?: readonly number[];
}

interface Pending {
  /** The request's type, which its ERROR answer (an ACK is one) quotes. */
  type: number;
  replyTypes: readonly number[] | undefined;
  replies: Buffer[];
  /** Called once, on the part's ACK, ERROR or DONE (err undefined on success). */
  done(err: Error | undefined, replies: Buffer[]): void;
}

/** Whether a message with our port and a pending request's number is an answer to that request (see receive). */
function answers(p: Pending, type: number, seq: number, data: Buffer): boolean {
  if (type === NLMSG_DONE) return true;
  if (type === NLMSG_ERROR) {
    // struct nlmsgerr: the errno, then the header of the request it answers.
    const e = parseNetlinkError(data);
    return e !== undefined && e.type === p.type && e.seq === seq;
  }
  return p.replyTypes === undefined || p.replyTypes.includes(type);
}

/**
 * The requests outstanding on one socket, and what the socket receives matched to them: RtnlSocket's, and the
 * off-thread link delete's (netns/), whose socket is not the binding's because its request is sent from a worker.
 */
export class NetlinkAnswers {
  private readonly pending = new Map<number, Pending>();

  constructor(
    private readonly protocol: number,
    /** The socket's port ID; undefined for a socket that is one request's alone (any unicast to it is for us). */
    private readonly port: number | undefined,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Registers request `seq` and returns it encoded; `done` gets its ACK, ERROR or DONE, with the replies before it. */
  expect(
    part: { type: number; flags: number; body: Buffer; replyTypes?: readonly number[] },
    seq: number,
    done: Pending['done'],
  ): Buffer[] {
    const replyTypes = part.replyTypes ?? (this.protocol === NETLINK_ROUTE ? rtnlReplyTypes(part.type, part.flags) : undefined);
    this.pending.set(seq, { type: part.type, replyTypes, replies: [], done });
    return encodeNetlinkMessage(part.type, part.flags, seq, part.body);
  }

  forget(seq: number): void {
    this.pending.delete(seq);
  }

  /** The replies gathered so far for the request `seq`, while it waits for its ACK (an echo comes before it). */
  repliesOf(seq: number): readonly Buffer[] {
    return this.pending.get(seq)?.replies ?? [];
  }

  /**
   * Takes a message as an answer only when everything about it says it is one: it comes from the kernel (sender
   * port 0), it is addressed to our port ID, it carries the sequence number of a request outstanding here, its
   * type is one that answers that request, and an ERROR (or ACK) quotes that request's type and number. Anything
   * else is dropped and counted: notifications, answers to requests we gave up on, and the kernel's echoes meant
   * for another socket (see nextNetlinkSeq).
   */
  receive(datagram: Buffer, fromPort: number): void {
    if (fromPort !== 0) {
      netlinkStrays.count++;
      return;
    }
    for (const { type, seq, port, data } of netlinkMessages(datagram)) {
      const p = this.port === undefined || port === this.port ? this.pending.get(seq) : undefined;
      if (!p || !answers(p, type, seq, data)) {
        netlinkStrays.count++;
        continue;
      }
      if (type === NLMSG_ERROR || type === NLMSG_DONE) {
        const errno = data.length >= 4 ? data.readInt32LE(0) : 0;
        this.pending.delete(seq);
        p.done(errno < 0 ? new NetlinkError(errno) : undefined, p.replies);
      } else {
        p.replies.push(data);
      }
    }
  }

  failAll(err: Error): void {
    for (const [seq, p] of [...this.pending]) {
      this.pending.delete(seq);
      p.done(err, p.replies);
    }
  }
}

export class RtnlSocket implements RequestSocket {
  private readonly native: NativeNetlink;
  private readonly answers: NetlinkAnswers;
  /** The request in flight (see batch). */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** The port ID the kernel gave this socket: every answer to us is addressed to it. */
  readonly port: number;
  /** The network namespace the socket was made in (core threadNetnsKey), to be asserted where it is used. */
  readonly netns: string;

  /** Creates and binds the socket now, in the calling thread's network namespace. */
  constructor(
    protocol = NETLINK_ROUTE,
    private readonly timeoutMs = 10_000,
  ) {
    const Native = loadNative();
    this.netns = threadNetnsKey();
    this.native = new Native(
      protocol,
      0,
      (msg, from) => this.answers.receive(msg, from.port),
      (err) => this.answers.failAll(err),
    );
    try {
      this.native.bind(0, 0); // port 0: the kernel picks one unique in this namespace
      this.port = this.native.address().port;
    } catch (err) {
      this.native.close();
      throw err;
    }
    this.answers = new NetlinkAnswers(protocol, this.port);
    this.native.unref();
  }

  /** `replyTypes`: the message types that may answer it (default as for NetlinkPart). */
  request(type: number, flags: number, body: Buffer, replyTypes?: readonly number[]): Promise<Buffer[]> {
    return this.batch([{ type, flags, body, ack: true, ...(replyTypes ? { replyTypes } : {}) }]).then(([outcome]) => {
      if (outcome?.error) throw outcome.error;
      return outcome?.replies ?? [];
    });
  }

  /**
   * Sends `parts` as one datagram (an nfnetlink batch is processed, and committed or aborted, as a whole). Resolves
   * once every part that asked for an answer has one, with those answers in order; the kernel's refusal of a part
   * is its `error`. Rejects when the socket fails, the kernel does not answer in time, or a part that asked for no
   * answer is refused (the whole batch was then not understood).
   *
   * One request at a time per socket, in the order asked: the kernel refuses a dump while another runs on the same
   * socket (EBUSY), and answers to many requests at once can overflow the socket's receive buffer (ENOBUFS, the
   * answers are lost) while the event loop is busy. A socket shared by concurrent calls (the agent's nftables
   * socket) met both.
   */
  batch(parts: NetlinkPart[]): Promise<{ error: NetlinkError | undefined; replies: Buffer[] }[]> {
    const run = () => this.send(parts);
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private send(parts: NetlinkPart[]): Promise<{ error: NetlinkError | undefined; replies: Buffer[] }[]> {
    if (this.closed) return Promise.reject(new Error('netlink socket is closed'));
    const seqs = parts.map(() => nextNetlinkSeq());
    return new Promise((resolve, reject) => {
      const outcomes: { error: NetlinkError | undefined; replies: Buffer[] }[] = [];
      let waiting = parts.filter((p) => p.ack).length;
      let finished = false;
      const finish = (err?: Error) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        for (const seq of seqs) this.answers.forget(seq);
        if (this.answers.size === 0 && !this.closed) this.native.unref();
        if (err) reject(err);
        else resolve(outcomes);
      };
      const timer = setTimeout(() => finish(new Error(`no answer from the kernel within ${this.timeoutMs} ms`)), this.timeoutMs);
      if (this.answers.size === 0) this.native.ref();
      const data: Buffer[] = [];
      parts.forEach((part, i) => {
        const seq = seqs[i] as number;
        const request = { ...part, flags: (part.flags ?? 0) | (part.ack ? NLM_F_ACK : 0) };
        if (!part.ack) {
          data.push(...this.answers.expect(request, seq, (err) => err && finish(err)));
          return;
        }
        const slot = outcomes.push({ error: undefined, replies: [] }) - 1;
        const done: Parameters<NetlinkAnswers['expect']>[2] = (err, replies) => {
          if (err && !(err instanceof NetlinkError)) return finish(err);
          outcomes[slot] = { error: err, replies };
          if (--waiting === 0) finish();
        };
        data.push(...this.answers.expect(request, seq, done));
      });
      if (waiting === 0) {
        // Nothing will answer: done once the datagram is out.
        this.native.send(0, 0, data, (err) => finish(err));
        return;
      }
      this.native.send(0, 0, data, (err) => {
        if (err) finish(err);
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
    this.answers.failAll(new Error('netlink socket closed before the kernel answered'));
  }
}
