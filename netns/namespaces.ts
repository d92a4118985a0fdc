/**
 * Named network namespaces: files bind-mounted onto an nsfs inode, as `ip netns add` makes them.
 */
import { closeSync, mkdirSync, openSync, readdirSync, statfsSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, ErrorCode, hasErrno, run, wrapError } from '../core/index.js';
import { bindMount, CLONE_NEWNET, namespaceType, setns, umountDetach, unshare } from './libc.js';

/** Where iproute2 (and so every tool that lists namespaces) keeps named namespaces. */
export const defaultNetnsDir = '/run/netns';
/** statfs f_type of the namespace filesystem (linux/magic.h NSFS_MAGIC). */
const NSFS_MAGIC = 0x6e736673;

/**
 * Creates a network namespace and pins it at `<dir>/<name>`; returns that path.
 *
 * In /run/netns this runs `ip netns add`, which also makes /run/netns a shared mount point: without
 * that, a mount namespace created later (a container) keeps a copy of the pin and the namespace
 * outlives deleteNetns. Elsewhere (tests, private state dirs) it is done in-process: unshare the
 * main thread into a fresh namespace, bind-mount it onto the file, switch back.
 */
export async function createNetns(name: string, dir: string = defaultNetnsDir): Promise<string> {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to create network namespace "${name}": invalid name`);
  }
  const path = join(dir, name);
  if (dir === defaultNetnsDir) {
    const r = await run('ip', ['netns', 'add', name], { allowFailure: true });
    if (r.code !== 0) {
      const code = /exists/i.test(r.stderr) ? ErrorCode.exists : ErrorCode.internal;
      throw new CtnetError(code, `failed to create network namespace ${path}: ${r.stderr.trim()}`);
    }
    return path;
  }
  createPinnedNetns(path);
  return path;
}

function createPinnedNetns(path: string): void {
  const what = `create network namespace ${path}`;
  try {
    mkdirSync(join(path, '..'), { recursive: true });
    closeSync(openSync(path, 'wx'));
  } catch (err) {
    throw wrapError(what, err, hasErrno(err, 'EEXIST') ? ErrorCode.exists : ErrorCode.io);
  }
  try {
    const original = openSync('/proc/thread-self/ns/net', 'r');
    try {
      unshare(CLONE_NEWNET);
      try {
        bindMount('/proc/thread-self/ns/net', path);
      } finally {
        setns(original, CLONE_NEWNET);
      }
    } finally {
      closeSync(original);
    }
  } catch (err) {
    unlinkSync(path);
    throw wrapError(what, err);
  }
}

/** Unpins and removes a namespace file. A path that is already gone (or only half there) is fine. */
export async function deleteNetns(path: string): Promise<void> {
  const what = `delete network namespace ${path}`;
  try {
    umountDetach(path);
  } catch (err) {
    // ENOENT: gone. EINVAL: not a mount point any more (already unmounted, or a leftover empty file).
    if (!hasErrno(err, 'ENOENT', 'EINVAL')) throw wrapError(what, err);
  }
  try {
    const st = statSync(path);
    if (st.size !== 0) throw new CtnetError(ErrorCode.internal, `failed to ${what}: it is a non-empty file, not a namespace`);
    unlinkSync(path);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return;
    throw err instanceof CtnetError ? err : wrapError(what, err, ErrorCode.io);
  }
}

/** True if `path` is a network namespace file (a pin like /run/netns/x, or /proc/<pid>/ns/net). */
export function isNetns(path: string): boolean {
  try {
    if (Number(statfsSync(path).type) !== NSFS_MAGIC) return false;
  } catch {
    return false;
  }
  // nsfs also holds mount, pid, uts… namespaces: ask the kernel which type this one is.
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    return namespaceType(fd) === CLONE_NEWNET;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** True if both paths name the same namespace (same nsfs inode). False if either cannot be read. */
export function sameNetns(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/** Paths of the network namespaces pinned in `dir` (none if it does not exist). */
export function listNetns(dir: string = defaultNetnsDir): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return [];
    throw wrapError(`list network namespaces in ${dir}`, err, ErrorCode.io);
  }
  return names
    .sort()
    .map((name) => join(dir, name))
    .filter(isNetns);
}
