/**
 * The node's own firewall rules (masquerade of pod traffic leaving the cluster, forwarding of cluster traffic;
 * iptables/node-rules.ts), through the firewall backend the node network names (its portmap's `backend`), so
 * one host's cluster rules and port forwards live in one firewall. Runs in the current network namespace.
 */
import { CtnetError, ErrorCode, log } from '../core/index.js';
import { openFirewall, preferredBackend } from '../iptables/index.js';

export type NodeFirewallBackend = 'iptables' | 'nftables';
const backends: NodeFirewallBackend[] = ['iptables', 'nftables'];

/** The backend named by --firewall, or the one new ctnet networks get (nftables when it runs in-process). */
export async function pickNodeFirewall(name: string | undefined): Promise<NodeFirewallBackend> {
  if (name === undefined || name === 'auto') {
    const preferred = await preferredBackend();
    if (!preferred) {
      throw new CtnetError(ErrorCode.invalidConfig, 'neither iptables nor nft is installed', {
        hint: 'install nftables or iptables: the node masquerades pod traffic that leaves the cluster',
      });
    }
    return preferred;
  }
  if (!backends.includes(name as NodeFirewallBackend)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid --firewall ${name}: expected iptables, nftables or auto`);
  }
  return name as NodeFirewallBackend;
}

/**
 * Installs the node rules with `backend` and removes any the other backend holds (a node restarted with another
 * --firewall leaves nothing behind in the first).
 */
export async function setupNodeFirewall(backend: NodeFirewallBackend, clusterCidr: string, subnet: string): Promise<void> {
  await (await openFirewall(backend)).setupNodeRules({ clusterCidr, subnet });
  for (const other of backends.filter((b) => b !== backend)) await teardownWith(other);
}

/** Removes the node rules from every backend installed here. */
export async function teardownNodeFirewall(): Promise<void> {
  for (const b of backends) await teardownWith(b);
}

async function teardownWith(backend: NodeFirewallBackend): Promise<void> {
  let fw: Awaited<ReturnType<typeof openFirewall>>;
  try {
    fw = await openFirewall(backend);
  } catch (err) {
    log.debug({ backend, err: (err as Error).message }, 'node: firewall backend not installed; nothing of it to remove');
    return;
  }
  await fw.teardownNodeRules();
}

/** The node rules as `backend` lists them. */
export async function listNodeFirewall(backend: NodeFirewallBackend): Promise<string[]> {
  return (await openFirewall(backend)).listNodeRules();
}
