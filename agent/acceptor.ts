/**
 * The agent's socket, kept on a thread of its own: the one module that touches descriptors the way
 * Node's `net` cannot.
 *
 * - **Listening.** An abstract unix socket `@<name>`: it exists only in the network namespace the agent
 *   started in, so a client always reaches the agent of its own "host" namespace. Abstract names have no
 *   file permissions; the agent serves root callers only (SO_PEERCRED), and its clients talk only to an
 *   agent running as root.
 * - **Who calls, bound when the connection is accepted.** `SO_PEERPIDFD` gives a pidfd of the process
 *   that connected; its pid (from the pidfd's fdinfo, as this /proc numbers it), its mount and pid
 *   namespaces and its root directory are read, and then the pidfd must still name a live process, so
 *   what was read belongs to the process that connected and not to one that took its pid later. The
 *   same holds when the whole request has arrived: a connection whose process is gone is refused,
 *   whoever holds the socket by then.
 * - **Descriptors.** A run hands over its stdin, stdout and stderr as SCM_RIGHTS with its REQUEST
 *   frame; they are received here (recvmsg) before the connection goes to the main thread, which
 *   then reads and writes it as a plain `net.Socket` (exactly the REQUEST frame is consumed here, so
 *   the frames that follow, signals, are the main thread's). The descriptors are the caller's own open
 *   files: a terminal stays a terminal (isatty, TIOCGWINSZ, termios), which is the hook for `-t`.
 * - **Watchdog.** The main thread ticks a shared counter. When it has not moved for `watchdogMs`, the
 *   event loop is stuck: this thread stops listening (new calls find no agent and their clients run
 *   the work themselves), declines the requests the main thread has not taken yet, logs, and kills the
 *   process, so clients waiting on a call in flight learn it at once (CNI error 11, exit code 125)
 *   instead of waiting on a wedged agent. A service manager restarts it.
 *
 * The thread runs a small poll(2) loop over koffi (libc) in a worker started from this file's own
 * source (`acceptorMain`, which therefore uses nothing from its module).
 */
import { appendFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { lazyResolve } from '../core/index.js';
import { maxRequestBytes, maxRequestFds } from './protocol.js';

/** What the agent knows of a caller, read at accept time through its pidfd. */
export interface Caller {
  /** The pid as this process's /proc numbers it (0 when not visible). */
  pid: number;
  uid: number;
  /** Whether it shares the agent's mount namespace, pid namespace, and root directory. */
  sameMount: boolean;
  samePid: boolean;
  sameRoot: boolean;
}

export interface Accepted {
  /** Order of arrival; claim it before acting on it. */
  seq: number;
  /** The connection, as a socket whose REQUEST frame has been read. */
  socket: Socket;
  /** The descriptors the REQUEST frame carried (the agent's to close). */
  fds: number[];
  caller: Caller;
  payload: Uint8Array;
}

export interface AcceptorOptions {
  socketName: string;
  /** How long the event loop may stay stuck before the agent takes itself out of service (0: never). */
  watchdogMs: number;
  /** Where the watchdog's last words go besides stderr (the agent's CTNET_LOG_FILE). */
  logFile?: string | undefined;
  onRequest(accepted: Accepted): void;
}

export interface Acceptor {
  /** Stops listening and drops connections whose request is incomplete. */
  stop(): Promise<void>;
}

const slots = 4096;
/**
 * The shared words: the heartbeat, the stop flag, the out-of-service flag (set by the worker), then a slot
 * per connection handed over: 0 while open, CLAIMED by the main thread or 2 when the watchdog declined it.
 * The worker's own source repeats these numbers (it cannot import).
 */
const HEARTBEAT = 0;
const STOP = 1;
const FIRST_SLOT = 4;
const CLAIMED = 1;

export function startAcceptor(opts: AcceptorOptions): Promise<Acceptor> {
  const shared = new Int32Array(new SharedArrayBuffer(4 * (FIRST_SLOT + slots)));
  const worker = new Worker(
    `const __name = (f) => f;\n(${acceptorMain.toString()})(require('node:worker_threads').workerData);`,
    {
      eval: true,
      workerData: {
        shared,
        koffiPath: lazyResolve('koffi'),
        socketName: opts.socketName,
        watchdogMs: opts.watchdogMs,
        logFile: opts.logFile,
        maxRequestBytes,
        maxRequestFds,
        slots,
      } satisfies WorkerData,
    },
  );
  const beat = setInterval(() => Atomics.add(shared, HEARTBEAT, 1), 50);
  beat.unref();
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  void exited.then(() => clearInterval(beat));
  return new Promise((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'listening') {
        resolve({
          async stop() {
            Atomics.store(shared, STOP, 1);
            await exited;
          },
        });
      } else if (m.type === 'error') {
        reject(Object.assign(new Error(`failed to listen on @${opts.socketName}: ${m.message}`), { code: m.code }));
      } else if (m.type === 'request') {
        // The watchdog may have answered it already, while this thread was stuck.
        if (Atomics.compareExchange(shared, FIRST_SLOT + (m.seq % slots), 0, CLAIMED) !== 0) return;
        const socket = new Socket({ fd: m.fd, readable: true, writable: true, allowHalfOpen: true });
        opts.onRequest({ seq: m.seq, socket, fds: m.fds, caller: m.caller, payload: m.payload });
      }
    });
    worker.once('error', (err) => {
      if (opts.logFile)
        appendFileSync(opts.logFile, `${JSON.stringify({ level: 60, msg: 'agent socket thread failed', err: String(err) })}\n`);
      process.stderr.write(`ctnet agent: the socket thread failed: ${String(err)}\n`);
      reject(err);
      // Without it nothing is accepted: better gone (clients then run the work themselves) than deaf.
      process.exit(70);
    });
  });
}

interface WorkerData {
  shared: Int32Array;
  koffiPath: string;
  socketName: string;
  watchdogMs: number;
  logFile: string | undefined;
  maxRequestBytes: number;
  maxRequestFds: number;
  slots: number;
}

type WorkerMessage =
  | { type: 'listening' }
  | { type: 'error'; code: string; message: string }
  | { type: 'request'; seq: number; fd: number; fds: number[]; caller: Caller; payload: Uint8Array };

/**
 * The socket thread. Self-contained: it runs from its own source text in the worker. Everything is
 * non-blocking; one poll(2) a tick of at most 100 ms, which is also the watchdog's clock.
 */
function acceptorMain(data: WorkerData): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const fs = require('node:fs') as typeof import('node:fs');
  const util = require('node:util') as typeof import('node:util');
  const koffi = require(data.koffiPath) as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  const c = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    listen: lib.func('int listen(int fd, int backlog)'),
    accept4: lib.func('int accept4(int fd, void *addr, void *len, int flags)'),
    poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)'),
    recvmsg: lib.func('long recvmsg(int fd, void *msg, int flags)'),
    write: lib.func('long write(int fd, const void *buf, size_t len)'),
    close: lib.func('int close(int fd)'),
    getsockopt: lib.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *length)'),
    syscall: lib.func('long syscall(long number, ...)'),
  };
  const errnoName = (): string => {
    try {
      return util.getSystemErrorName(-koffi.errno());
    } catch {
      return `errno ${koffi.errno()}`;
    }
  };
  const { shared } = data;
  const post = (m: WorkerMessage, transfer?: ArrayBuffer[]) => parentPort?.postMessage(m, transfer ?? []);
  const lastWords = (msg: string, extra: Record<string, unknown>) => {
    const line = `${JSON.stringify({ level: 60, time: Date.now(), pid: process.pid, msg, ...extra })}\n`;
    try {
      fs.writeSync(2, `ctnet agent: ${msg} ${JSON.stringify(extra)}\n`);
      if (data.logFile) fs.appendFileSync(data.logFile, line);
    } catch {
      /* the kill below matters more */
    }
  };

  // ---- listening
  const AF_UNIX = 1;
  const SOCK_STREAM = 1;
  const SOCK_NONBLOCK = 0x800;
  const SOCK_CLOEXEC = 0x80000;
  const listenFd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  if (listenFd < 0) {
    post({ type: 'error', code: errnoName(), message: 'socket' });
    return;
  }
  const name = Buffer.from(data.socketName, 'utf8');
  const addr = Buffer.alloc(3 + name.length); // sa_family (u16), NUL (abstract), the name: no padding
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 3);
  if (c.bind(listenFd, addr, addr.length) < 0 || c.listen(listenFd, 256) < 0) {
    const code = errnoName();
    c.close(listenFd);
    post({ type: 'error', code, message: code === 'EADDRINUSE' ? 'address in use' : code });
    return;
  }
  post({ type: 'listening' });

  // ---- who calls
  const SOL_SOCKET = 1;
  const SO_PEERCRED = 17;
  const SO_PEERPIDFD = 77;
  const SYS_pidfd_send_signal = 424;
  const ownMnt = fs.readlinkSync('/proc/self/ns/mnt');
  const ownPid = fs.readlinkSync('/proc/self/ns/pid');
  const ownRoot = fs.statSync('/');
  const alive = (pidfd: number) =>
    Number(c.syscall(SYS_pidfd_send_signal, 'int', pidfd, 'int', 0, 'void *', null, 'unsigned int', 0)) === 0;
  const SYS_pidfd_open = 434;
  /**
   * The caller, or undefined when its process is gone (or cannot be pinned by a pidfd). SO_PEERPIDFD
   * (Linux 6.5) names the process that connected; before it, pidfd_open of SO_PEERCRED's pid names
   * whoever has that pid at accept time, which is the connecting process unless it exited in between.
   */
  const identify = (fd: number): { caller: Caller; pidfd: number } | undefined => {
    const cred = Buffer.alloc(12);
    if (c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, [12]) < 0) return undefined;
    const pidfdBuf = Buffer.alloc(4);
    let pidfd = -1;
    if (c.getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, pidfdBuf, [4]) === 0) pidfd = pidfdBuf.readInt32LE(0);
    else if (errnoName() === 'ENOPROTOOPT' && cred.readInt32LE(0) > 0) {
      pidfd = Number(c.syscall(SYS_pidfd_open, 'int', cred.readInt32LE(0), 'unsigned int', 0));
    }
    if (pidfd < 0) return undefined;
    const caller: Caller = { pid: 0, uid: cred.readUInt32LE(4), sameMount: false, samePid: false, sameRoot: false };
    try {
      const info = fs.readFileSync(`/proc/self/fdinfo/${pidfd}`, 'utf8');
      caller.pid = Number(/^Pid:\s*(-?\d+)/m.exec(info)?.[1] ?? 0);
      if (caller.pid > 0) {
        caller.sameMount = fs.readlinkSync(`/proc/${caller.pid}/ns/mnt`) === ownMnt;
        caller.samePid = fs.readlinkSync(`/proc/${caller.pid}/ns/pid`) === ownPid;
        const root = fs.statSync(`/proc/${caller.pid}/root`);
        caller.sameRoot = root.dev === ownRoot.dev && root.ino === ownRoot.ino;
      }
    } catch {
      /* a process that cannot be inspected shares nothing */
    }
    // Read while it lived: all of it describes the process that connected.
    if (caller.pid < 0 || !alive(pidfd)) {
      c.close(pidfd);
      return undefined;
    }
    return { caller, pidfd };
  };

  // ---- reading a REQUEST frame, with the descriptors sent beside it
  const chunk = 64 * 1024;
  const dataPtr = koffi.alloc('uint8_t', chunk);
  const dataView = Buffer.from(koffi.view(dataPtr, chunk));
  const controlSize = 16 + 4 * 16; // one cmsghdr, room for more descriptors than allowed (the rest are closed)
  const controlPtr = koffi.alloc('uint8_t', controlSize);
  const control = Buffer.from(koffi.view(controlPtr, controlSize));
  const iovPtr = koffi.alloc('uint8_t', 16);
  const iov = Buffer.from(koffi.view(iovPtr, 16));
  iov.writeBigUInt64LE(koffi.address(dataPtr), 0);
  const msgPtr = koffi.alloc('uint8_t', 56);
  const msg = Buffer.from(koffi.view(msgPtr, 56));
  const MSG_DONTWAIT = 0x40;
  const MSG_CMSG_CLOEXEC = 0x40000000;
  const SCM_RIGHTS = 1;

  interface Conn {
    fd: number;
    pidfd: number;
    caller: Caller;
    header: Buffer;
    got: number;
    payload: Buffer | undefined;
    fds: number[];
    since: number;
  }
  const conns = new Map<number, Conn>();
  const drop = (conn: Conn) => {
    conns.delete(conn.fd);
    for (const fd of conn.fds) c.close(fd);
    c.close(conn.pidfd);
    c.close(conn.fd);
  };
  /** One recvmsg of up to `want` bytes; the number read, 0 at the end, -1 when nothing is there yet, -2 on error. */
  const receive = (conn: Conn, want: number): number => {
    msg.fill(0);
    msg.writeBigUInt64LE(koffi.address(iovPtr), 16);
    msg.writeBigUInt64LE(1n, 24);
    msg.writeBigUInt64LE(koffi.address(controlPtr), 32);
    msg.writeBigUInt64LE(BigInt(controlSize), 40);
    iov.writeBigUInt64LE(BigInt(Math.min(want, chunk)), 8);
    const n = Number(c.recvmsg(conn.fd, msgPtr, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
    if (n < 0) return errnoName() === 'EAGAIN' ? -1 : -2;
    const controlLen = Number(msg.readBigUInt64LE(40));
    for (let at = 0; at + 16 <= controlLen; ) {
      const len = Number(control.readBigUInt64LE(at));
      if (len < 16) break;
      if (control.readInt32LE(at + 8) === SOL_SOCKET && control.readInt32LE(at + 12) === SCM_RIGHTS) {
        for (let i = at + 16; i + 4 <= at + len; i += 4) conn.fds.push(control.readInt32LE(i));
      }
      at += (len + 7) & ~7;
    }
    return n;
  };
  const readSome = (conn: Conn): void => {
    for (;;) {
      const inHeader = conn.got < 8;
      const want = inHeader ? 8 - conn.got : (conn.payload?.length ?? 0) - (conn.got - 8);
      const n = receive(conn, want);
      if (n === -1) return;
      if (n <= 0 || conn.fds.length > data.maxRequestFds) {
        drop(conn);
        return;
      }
      if (inHeader) {
        dataView.copy(conn.header, conn.got, 0, n);
        conn.got += n;
        if (conn.got < 8) continue;
        const length = conn.header.readUInt32LE(0);
        if (conn.header.readUInt32LE(4) !== 1 || length < 4 || length - 4 > data.maxRequestBytes) {
          drop(conn);
          return;
        }
        conn.payload = Buffer.alloc(length - 4);
      } else if (conn.payload) {
        dataView.copy(conn.payload, conn.got - 8, 0, n);
        conn.got += n;
      }
      if (conn.payload && conn.got - 8 === conn.payload.length) {
        handOver(conn);
        return;
      }
    }
  };

  // ---- handing over to the main thread, or declining (the client then does the work itself)
  const declineAndClose = (fd: number, reason: string): void => {
    const text = Buffer.from(reason, 'utf8');
    const frame = Buffer.alloc(8 + text.length);
    frame.writeUInt32LE(4 + text.length, 0);
    frame.writeUInt32LE(1, 4); // DECLINED
    text.copy(frame, 8);
    c.write(fd, frame, frame.length);
    c.close(fd);
  };

  let seq = 0;
  const handed: { seq: number; fd: number; fds: number[] }[] = [];
  const slotOf = (s: number) => 4 + (s % data.slots);
  const handOver = (conn: Conn): void => {
    conns.delete(conn.fd);
    // Whoever holds the socket now, the process that connected must still be there.
    const gone = !alive(conn.pidfd);
    c.close(conn.pidfd);
    if (gone) {
      for (const fd of conn.fds) c.close(fd);
      declineAndClose(conn.fd, 'the process that connected is gone');
      lastWords('request refused: the process that connected is gone', { level: 40, pid: conn.caller.pid });
      return;
    }
    const s = ++seq;
    Atomics.store(shared, slotOf(s), 0);
    handed.push({ seq: s, fd: conn.fd, fds: conn.fds });
    const payload = new Uint8Array(conn.payload ?? Buffer.alloc(0));
    post({ type: 'request', seq: s, fd: conn.fd, fds: conn.fds, caller: conn.caller, payload }, [payload.buffer as ArrayBuffer]);
  };

  // ---- the watchdog
  let lastBeat = Atomics.load(shared, 0);
  let lastBeatAt = Date.now();
  const outOfService = (): void => {
    Atomics.store(shared, 2, 1);
    c.close(listenFd);
    const stuckMs = Date.now() - lastBeatAt;
    let declined = 0;
    for (const h of handed) {
      if (Atomics.compareExchange(shared, slotOf(h.seq), 0, 2) !== 0) continue;
      for (const fd of h.fds) c.close(fd);
      declineAndClose(h.fd, 'the ctnet agent is out of service');
      declined++;
    }
    for (const conn of [...conns.values()]) drop(conn);
    lastWords('the event loop is stuck: out of service, exiting', { stuckMs, declined });
    process.kill(process.pid, 'SIGKILL');
  };

  // ---- the loop
  const POLLIN = 1;
  for (;;) {
    if (Atomics.load(shared, 1) === 1) break;
    const list = [listenFd, ...conns.keys()];
    const fds = Buffer.alloc(8 * list.length);
    list.forEach((fd, i) => {
      fds.writeInt32LE(fd, 8 * i);
      fds.writeInt16LE(POLLIN, 8 * i + 4);
    });
    const ready = c.poll(fds, list.length, 100) as number;
    const now = Date.now();
    const beat = Atomics.load(shared, 0);
    if (beat !== lastBeat) {
      lastBeat = beat;
      lastBeatAt = now;
    } else if (data.watchdogMs > 0 && now - lastBeatAt > data.watchdogMs) {
      outOfService();
      return;
    }
    for (let i = handed.length - 1; i >= 0; i--) {
      const h = handed[i];
      if (h && Atomics.load(shared, slotOf(h.seq)) !== 0) handed.splice(i, 1);
    }
    if (ready > 0) {
      for (let i = 1; i < list.length; i++) {
        const conn = conns.get(list[i] as number);
        if (conn && fds.readInt16LE(8 * i + 6) !== 0) readSome(conn);
      }
      if (fds.readInt16LE(6) & POLLIN) {
        for (;;) {
          const fd = c.accept4(listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC) as number;
          if (fd < 0) break;
          const who = identify(fd);
          if (!who) {
            // Nobody to serve: a client still there runs the work itself; one that is gone reads nothing.
            declineAndClose(fd, 'the process that connected is gone');
            continue;
          }
          const conn: Conn = {
            fd,
            pidfd: who.pidfd,
            caller: who.caller,
            header: Buffer.alloc(8),
            got: 0,
            payload: undefined,
            fds: [],
            since: now,
          };
          conns.set(fd, conn);
          readSome(conn);
        }
      }
    }
    // A client has a few seconds to send its request; none takes more than a write.
    for (const conn of [...conns.values()]) if (now - conn.since > 5000) drop(conn);
  }
  c.close(listenFd);
  for (const conn of [...conns.values()]) drop(conn);
}
