/**
 * The few libc calls Node does not offer (setns, unshare, mount, umount2, ioctl, and send/recv on a
 * worker thread), bound through core's libcFunction on first use (~5 ms): most callers of netns/ never need it.
 */
import { closeSync, fstatSync } from 'node:fs';
import { checkSyscall, libcFunction, loadKoffi, netnsIdentity, SystemCallError } from '../core/index.js';

/** Namespace type flags (linux/sched.h). */
export const CLONE_NEWNET = 0x40000000;
const MS_BIND = 0x1000;
const MNT_DETACH = 0x2;
/** ioctl(NS_GET_NSTYPE) on an nsfs file returns the CLONE_NEW* type of that namespace. */
const NS_GET_NSTYPE = 0xb703;

interface Libc {
  setns(fd: number, nstype: number): number;
  unshare(flags: number): number;
  mount(source: string, target: string, fstype: string, flags: number, data: null): number;
  umount2(target: string, flags: number): number;
  ioctl(fd: number, request: number): number;
  socket(domain: number, type: number, protocol: number): number;
  send: AsyncFunc<(fd: number, buf: Buffer, len: number, flags: number) => number | bigint>;
  recv(fd: number, buf: Buffer, len: number, flags: number): number | bigint;
}

/** A koffi function, also callable on one of koffi's worker threads through `async`. */
type AsyncFunc<F extends (...args: never[]) => unknown> = F & {
  async: (...args: [...Parameters<F>, (err: unknown, result: ReturnType<F>) => void]) => void;
};

let libc: Libc | undefined;

function load(): Libc {
  libc ??= {
    setns: libcFunction('int setns(int fd, int nstype)'),
    unshare: libcFunction('int unshare(int flags)'),
    mount: libcFunction('int mount(str source, str target, str fstype, unsigned long flags, void *data)'),
    umount2: libcFunction('int umount2(str target, int flags)'),
    // Declared with its one argument we use: on x86-64 and arm64 that is ABI-compatible with the variadic form.
    ioctl: libcFunction('int ioctl(int fd, unsigned long request)'),
    socket: libcFunction('int socket(int domain, int type, int protocol)'),
    send: libcFunction('long send(int fd, const void *buf, size_t len, int flags)'),
    recv: libcFunction('long recv(int fd, void *buf, size_t len, int flags)'),
  };
  return libc;
}

export function setns(fd: number, nstype: number): void {
  checkSyscall('setns', load().setns(fd, nstype));
}

export function unshare(flags: number): void {
  checkSyscall('unshare', load().unshare(flags));
}

export function bindMount(source: string, target: string): void {
  checkSyscall('mount', load().mount(source, target, 'none', MS_BIND, null));
}

/** Lazy unmount, as `ip netns del` does: succeeds even while a process still uses the namespace. */
export function umountDetach(target: string): void {
  checkSyscall('umount2', load().umount2(target, MNT_DETACH));
}

export function namespaceType(fd: number): number {
  return checkSyscall('ioctl(NS_GET_NSTYPE)', load().ioctl(fd, NS_GET_NSTYPE));
}

const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;

/** socket(2): a non-blocking, close-on-exec TCP or UDP socket in the calling thread's namespace. */
export function createSocket(family: 4 | 6, kind: 'tcp' | 'udp'): number {
  const domain = family === 4 ? 2 : 10;
  const type = (kind === 'tcp' ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
  return checkSyscall('socket', load().socket(domain, type, 0));
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;

/** A netlink socket (protocol 0: rtnetlink) in the calling thread's namespace; its fd. */
export function createNetlinkSocket(protocol = 0): number {
  return checkSyscall('socket', load().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
}

/**
 * send(2) on one of koffi's worker threads: JavaScript goes on while the kernel works. For a netlink request
 * the kernel does the work inside send, which for a link delete includes waiting for RCU (15–40 ms). `buf`
 * must not be touched, nor `fd` closed, until the promise settles.
 */
export function sendOnWorker(fd: number, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    load().send.async(fd, buf, buf.length, 0, (err, result) => {
      if (err) return reject(err);
      const n = Number(result);
      // errno belongs to the worker thread and is gone by now: the call is named, not its cause.
      if (n < 0) return reject(new SystemCallError('send', 0, 'failed on a worker thread'));
      resolve(n);
    });
  });
}

const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;

/** recv(2) without waiting: the length of the datagram read into buf, or undefined when none is queued. */
export function recvNow(fd: number, buf: Buffer): number | undefined {
  const n = Number(load().recv(fd, buf, buf.length, MSG_DONTWAIT));
  if (n >= 0) return n;
  if (loadKoffi().errno() === EAGAIN) return undefined;
  return checkSyscall('recv', -1);
}

/** ioctl(SIOCGSKNS) on a socket returns an fd for the network namespace the socket belongs to. */
const SIOCGSKNS = 0x894c;

/** The identity (core netnsIdentity) of the network namespace a socket belongs to, as the kernel knows it. */
export function socketNetnsIdentity(fd: number): string {
  const nsFd = checkSyscall('ioctl(SIOCGSKNS)', load().ioctl(fd, SIOCGSKNS));
  try {
    return netnsIdentity(fstatSync(nsFd));
  } finally {
    closeSync(nsFd);
  }
}
