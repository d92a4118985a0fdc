/**
 * Runs synchronous code with the main thread switched into another network namespace.
 *
 * Why this is safe in Node: JavaScript runs only on the main thread and setns(2) changes only the
 * calling thread, so libuv's pool threads keep their namespace; while `fn` runs nothing else of
 * ours can run. Sockets (netlink, TCP) and /proc/sys/net files opened while switched stay bound to
 * the target namespace after we switch back. The work must be synchronous: an await inside `fn`
 * would resume after the switch back, in the original namespace.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { CtnetError, ErrorCode, netnsIdentity, recordThreadNetns, wrapError } from '../core/index.js';
import { CLONE_NEWNET, createSocket, setns } from './libc.js';

/** The calling thread's own namespace (not the process's: a switched main thread differs from it). */
const currentThreadNetns = '/proc/thread-self/ns/net';

/** How many inNetns() calls are running on this thread (nested ones count each). */
let switchDepth = 0;

/** True while inNetns() has this thread in another namespace than the process's own. */
export function isSwitched(): boolean {
  return switchDepth > 0;
}

export function inNetns<T>(path: string | undefined, fn: () => T): T {
  if (path === undefined) return fn();
  const target = openNetns(path);
  let original: number;
  let identity: string;
  try {
    identity = netnsIdentity(fstatSync(target));
    original = openSync(currentThreadNetns, 'r');
  } catch (err) {
    closeSync(target);
    throw wrapError('open the current network namespace', err, ErrorCode.io);
  }
  try {
    try {
      setns(target, CLONE_NEWNET);
    } catch (err) {
      throw wrapError(`enter network namespace ${path}`, err, ErrorCode.invalidNetns);
    }
    switchDepth++;
    const recorded = recordThreadNetns(identity);
    try {
      const result = fn();
      if (isThenable(result)) {
        throw new CtnetError(ErrorCode.internal, 'inNetns() callback returned a promise; it must be synchronous');
      }
      return result;
    } finally {
      switchDepth--;
      recordThreadNetns(recorded);
      // Switching back can only fail if the kernel lost our original namespace: nothing sane is left to do.
      setns(original, CLONE_NEWNET);
    }
  } finally {
    closeSync(original);
    closeSync(target);
  }
}

/** Opens a namespace file for setns; a missing or non-namespace path is CNI code 8 (invalid netns). */
export function openNetns(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw wrapError(`open network namespace ${path}`, err, ErrorCode.invalidNetns);
  }
}

function isThenable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * A TCP or UDP socket created inside the namespace at nsPath; returns its fd.
 *
 * Node's net and dgram create their fd lazily (at connect or bind, after a tick), so calling
 * them inside inNetns() would create the socket back in our own namespace. Hand this fd to
 * `new net.Socket({ fd }).connect(port, host)` or `dgram.createSocket('udp4').bind({ fd })`
 * instead: the socket stays in the namespace it was made in.
 */
export function socketIn(nsPath: string | undefined, family: 4 | 6, kind: 'tcp' | 'udp'): number {
  try {
    return inNetns(nsPath, () => createSocket(family, kind));
  } catch (err) {
    if (err instanceof CtnetError) throw err;
    throw wrapError(`create a ${kind} socket${nsPath ? ` in ${nsPath}` : ''}`, err);
  }
}
