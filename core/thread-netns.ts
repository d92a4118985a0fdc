/**
 * Which network namespace the main thread is in, as far as ctnet's own switching goes: netns/switch.ts (the only
 * code that moves the thread and comes back) records it here. Per-namespace caches (nftables contexts and
 * sockets) key on it instead of a stat of /proc/thread-self/ns/net, which costs ~0.4 ms on a machine with a
 * thousand namespaces (the lookup walks the namespace dentries).
 */
let current: string | undefined;

/** 'own' for the process's namespace, else the path of the namespace the thread was switched into. */
export function threadNetnsKey(): string {
  return current === undefined ? 'own' : `path:${current}`;
}

/** Records a switch (`path`) or a return (`undefined`); returns what was recorded before, for the way back. */
export function recordThreadNetns(path: string | undefined): string | undefined {
  const before = current;
  current = path;
  return before;
}
