/**
 * Whether a `ctnet cni-daemon` serves this network namespace (docs/cni-daemon.md), from the
 * kernel's list of unix sockets, which shows only the namespace of the reader.
 */
import type { Finding } from './doctor.js';

/** Abstract socket names of ctnet CNI daemons in a /proc/net/unix listing (Node pads them with NULs, shown as @). */
export function cniDaemonSockets(procNetUnix: string): string[] {
  const names = new Set<string>();
  for (const m of procNetUnix.matchAll(/@(ctnet-cni-[0-9a-f]+)/g)) names.add(m[1] as string);
  return [...names];
}

/** `ours`: the socket this build's shims use (undefined when built without the C shim). */
export function cniDaemonFinding(procNetUnix: string, ours: string | undefined): Finding {
  const check = 'cni daemon';
  const found = cniDaemonSockets(procNetUnix);
  if (ours && found.includes(ours)) {
    return { check, severity: 'ok', detail: `ctnet cni-daemon serves this namespace's CNI calls (@${ours})` };
  }
  if (found.length > 0) {
    return {
      check,
      severity: 'warn',
      detail: `a ctnet cni-daemon of another build listens (@${found.join(', @')}): this build's plugins do not use it and each call starts Node`,
      hint: 'restart ctnet cni-daemon after an upgrade or rebuild',
    };
  }
  return {
    check,
    severity: 'info',
    detail: 'no ctnet cni-daemon in this namespace: each CNI call starts Node (~40 ms)',
    hint: 'run `ctnet cni-daemon` (docs/cni-daemon.md)',
  };
}
