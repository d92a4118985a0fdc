/**
 * Whether a ctnet agent serves this network namespace (docs/agent.md), from the kernel's list of
 * unix sockets, which shows only the namespace of the reader.
 */
import type { Finding } from './doctor.js';

/** Abstract socket names of ctnet agents in a /proc/net/unix listing (padding NULs are shown as @). */
export function agentSockets(procNetUnix: string): string[] {
  const names = new Set<string>();
  for (const m of procNetUnix.matchAll(/@(ctnet-agent-[0-9a-f]+)/g)) names.add(m[1] as string);
  return [...names];
}

/** `ours`: the socket this build's clients use (undefined when built without the C clients). */
export function agentFinding(procNetUnix: string, ours: string | undefined): Finding {
  const check = 'agent';
  const found = agentSockets(procNetUnix);
  if (ours && found.includes(ours)) {
    return { check, severity: 'ok', detail: `a ctnet agent serves this namespace's CNI calls and runs (@${ours})` };
  }
  if (found.length > 0) {
    return {
      check,
      severity: 'warn',
      detail: `a ctnet agent of another build listens (@${found.join(', @')}): this build's plugins and runs do not use it, each call starts Node`,
      hint: 'restart `ctnet agent` after an upgrade or rebuild',
    };
  }
  return {
    check,
    severity: 'info',
    detail: 'no ctnet agent in this namespace: each CNI call and run starts Node (~40 ms)',
    hint: 'run `ctnet agent` (docs/agent.md)',
  };
}
