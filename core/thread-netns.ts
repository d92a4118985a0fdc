/**
 * Which network namespace the main thread is in, as far as ctnet's own switching goes: netns/switch.ts (the only
 * code that moves the thread and comes back) records it here. Per-namespace caches (nftables contexts and
 * sockets) key on it instead of a stat of /proc/thread-self/ns/net, which costs ~0.4 ms on a machine with a
 * thousand namespaces (the lookup walks the namespace dentries).
 *
 * A namespace is known by its identity (device and inode of its nsfs file), not by the path it was reached
 * through: a path can be reused by a later namespace (a container's netns path after the container is gone), and
 * a cache keyed on it would hand out a socket bound to the old one.
 */
let current: string | undefined;

/** 'own' for the process's namespace (which never changes), else the identity of the one the thread is in. */
export function threadNetnsKey(): string {
  return current ?? 'own';
}

/** A namespace's identity from the stat of its nsfs file (or of an fd open on it). */
export function netnsIdentity(st: { dev: number | bigint; ino: number | bigint }): string {
  return `${st.dev}:${st.ino}`;
}

/** Records a switch (the target's identity) or a return (`undefined`); returns what was recorded before. */
export function recordThreadNetns(identity: string | undefined): string | undefined {
  const before = current;
  current = identity;
  return before;
}
