/**
 * UDP conntrack flush for published host ports (cni-user-issues #12): a UDP client that keeps sending keeps its
 * conntrack entry, and with it the DNAT to a container that may be gone. Errors are logged, never raised: a missing
 * `conntrack` program or an empty table must not fail an ADD or DEL.
 */
import { log, run } from '../core/index.js';
import { findProgram } from './xtables-tools.js';

const timeoutMs = 5_000;

/** Deletes conntrack entries of UDP flows to each of `ports` (original destination port), IPv4 and IPv6. */
export async function flushUdpConntrack(ports: number[]): Promise<void> {
  const unique = [...new Set(ports)].filter((p) => Number.isInteger(p) && p > 0 && p < 65536);
  if (!unique.length) return;
  const conntrack = findProgram('conntrack');
  if (!conntrack) {
    log.warn({ ports: unique }, 'conntrack is not installed: stale UDP flows to these host ports are not flushed');
    return;
  }
  await Promise.all(
    unique.flatMap((port) =>
      ['ipv4', 'ipv6'].map(async (family) => {
        try {
          // Exit code 1 with "0 flow entries have been deleted" is the normal case: nothing to flush.
          const r = await run(conntrack, ['-D', '-f', family, '-p', 'udp', '--orig-port-dst', String(port)], {
            allowFailure: true,
            timeoutMs,
          });
          if (r.code !== 0 && !/0 flow entries/.test(r.stderr)) {
            log.warn({ port, family, stderr: r.stderr.trim() }, 'failed to flush UDP conntrack entries');
          }
        } catch (err) {
          log.warn({ err, port, family }, 'failed to flush UDP conntrack entries');
        }
      }),
    ),
  );
}
