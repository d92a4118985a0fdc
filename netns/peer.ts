/**
 * Whether a process on the other end of a local socket sees the system as we do: the resident
 * daemons (CNI and runner) act on paths and process ids a caller gives them, which mean the same
 * only to a caller in the daemon's mount and pid namespaces with the same root directory.
 */
import { readlinkSync, statSync } from 'node:fs';

/**
 * Why the caller (as SO_PEERCRED gives it) is not one to serve, or undefined when it is. The pid
 * namespace matters only to a daemon that acts on the caller's process ids.
 */
export function callerMismatch(
  peer: { pid: number; uid: number },
  opts: { samePidNamespace?: boolean } = {},
): string | undefined {
  if (peer.uid !== 0) return `caller uid ${peer.uid} is not root`;
  // pid 0: the caller's pid namespace is not visible from ours.
  if (peer.pid <= 0) return 'caller is in another pid namespace';
  try {
    for (const ns of opts.samePidNamespace ? (['mnt', 'pid'] as const) : (['mnt'] as const)) {
      if (readlinkSync(`/proc/${peer.pid}/ns/${ns}`) !== readlinkSync(`/proc/self/ns/${ns}`)) {
        return `caller is in another ${ns === 'mnt' ? 'mount' : 'pid'} namespace`;
      }
    }
    const theirs = statSync(`/proc/${peer.pid}/root`);
    const ours = statSync('/');
    if (theirs.dev !== ours.dev || theirs.ino !== ours.ino) return 'caller has another root directory';
  } catch (err) {
    return `caller ${peer.pid} cannot be inspected: ${(err as Error).message}`;
  }
  return undefined;
}
