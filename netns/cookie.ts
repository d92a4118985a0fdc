/**
 * The cookie of a network namespace (SO_NETNS_COOKIE, Linux 5.14): unique since boot and never reused, unlike the
 * namespace's inode number, so state kept per namespace under /run can be named by it.
 */
import { closeSync } from 'node:fs';
import { loadKoffi } from '../core/index.js';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;

/** The cookie of the calling thread's network namespace. */
export function netnsCookie(): bigint {
  const koffi = loadKoffi();
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const getsockopt = lib.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *length)');
  const fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new Error(`socket: errno ${koffi.errno()}`);
  try {
    const value = Buffer.alloc(8);
    if ((getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, value, [value.length]) as number) !== 0) {
      throw new Error(`getsockopt(SO_NETNS_COOKIE): errno ${koffi.errno()}`);
    }
    return value.readBigUInt64LE(0);
  } finally {
    closeSync(fd);
  }
}
