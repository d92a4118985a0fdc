/**
 * The node's firewall rules, in two chains of its own (names in names.ts), rebuilt as a whole in one
 * iptables-restore batch, each reached by one jump:
 *
 *   nat    POSTROUTING -j CTNET-NODE-MASQ
 *          CTNET-NODE-MASQ -s <cluster> -d <cluster> -j RETURN          pod ↔ pod anywhere: never NAT
 *          CTNET-NODE-MASQ -s <subnet> ! -d 224.0.0.0/4 -j MASQUERADE    pod → outside the cluster: the node's address
 *   filter FORWARD -j CTNET-NODE-FWD
 *          CTNET-NODE-FWD -s <cluster> -j ACCEPT, -d <cluster> -j ACCEPT  (hosts whose FORWARD policy is DROP)
 *
 * Runs in the current network namespace (the agent's).
 */
import { CtnetError, ErrorCode, run } from '../core/index.js';
import { forwardChain, masqChain } from './names.js';

const comment = ['-m', 'comment', '--comment', 'ctnet node'];

function batch(clusterCidr: string, subnet: string): string {
  return [
    '*nat',
    `:${masqChain} - [0:0]`,
    `-A ${masqChain} -s ${clusterCidr} -d ${clusterCidr} -j RETURN`,
    `-A ${masqChain} -s ${subnet} ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`,
    'COMMIT',
    '*filter',
    `:${forwardChain} - [0:0]`,
    `-A ${forwardChain} -s ${clusterCidr} -j ACCEPT`,
    `-A ${forwardChain} -d ${clusterCidr} -j ACCEPT`,
    'COMMIT',
    '',
  ].join('\n');
}

async function iptables(args: string[], allowFailure = false) {
  return run('iptables', ['-w', ...args], { allowFailure, timeoutMs: 10_000 });
}

const jumps: [table: string, chain: string, target: string][] = [
  ['nat', 'POSTROUTING', masqChain],
  ['filter', 'FORWARD', forwardChain],
];

export async function setupNodeFirewall(clusterCidr: string, subnet: string): Promise<void> {
  try {
    await run('iptables-restore', ['-w', '--noflush'], { input: batch(clusterCidr, subnet), timeoutMs: 10_000 });
    for (const [table, chain, target] of jumps) {
      const has = await iptables(['-t', table, '-C', chain, ...comment, '-j', target], true);
      if (has.code !== 0) await iptables(['-t', table, '-I', chain, '1', ...comment, '-j', target]);
    }
  } catch (cause) {
    throw new CtnetError(ErrorCode.io, `failed to set up the node's masquerade and forward rules: ${(cause as Error).message}`, {
      cause,
    });
  }
}

export async function teardownNodeFirewall(): Promise<void> {
  for (const [table, chain, target] of jumps) {
    while ((await iptables(['-t', table, '-D', chain, ...comment, '-j', target], true)).code === 0) {
      /* every copy of the jump */
    }
    await iptables(['-t', table, '-F', target], true);
    await iptables(['-t', table, '-X', target], true);
  }
}

/** The node's rules as iptables-save prints them (empty when none). */
export async function listNodeFirewall(): Promise<string[]> {
  const out: string[] = [];
  for (const table of ['nat', 'filter']) {
    const r = await run('iptables-save', ['-t', table], { allowFailure: true, timeoutMs: 10_000 });
    out.push(...r.stdout.split('\n').filter((l) => l.includes(masqChain) || l.includes(forwardChain)));
  }
  return out;
}
