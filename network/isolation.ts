/**
 * Isolation between ctnet's networks (Docker's model: containers on different user-defined networks cannot reach
 * each other), kept by the firewall backends through the Firewall interface (setupNetworkIsolation /
 * teardownNetworkIsolation, per network, keyed by its bridge). A pair of networks is isolated when one backend holds
 * both bridges, and networks may name different backends; so every backend some isolated network uses holds every
 * isolated network, and a backend that no network uses holds none. The state follows the network list: `network
 * create`/`rm`, the runner's default network and the node network sync it; `debug doctor` compares it, `--fix` syncs.
 */
import { ErrorCollector } from '../core/index.js';
import { type Firewall, type FirewallBackendName, type NetworkIsolation, openFirewall } from '../iptables/index.js';

export interface IsolatedNetwork extends NetworkIsolation {
  /** The firewall backend the network's conflist names; 'auto' when it names none (the plugins then pick). */
  backend: FirewallBackendName | 'auto';
}

interface BackendIsolation {
  firewall: Firewall;
  /** The networks this backend should isolate. */
  want: NetworkIsolation[];
  /** The networks it isolates now, and whether forwarding consults them. */
  held: NetworkIsolation[];
  hooked: boolean;
}

/** A backend this host lacks has nothing to hold (and cannot be asked). */
async function tryOpen(backend: FirewallBackendName | 'auto'): Promise<Firewall | undefined> {
  return openFirewall(backend).catch(() => undefined);
}

/** What each installed backend holds and should hold. */
async function compare(networks: readonly IsolatedNetwork[]): Promise<BackendIsolation[]> {
  const inUse = new Set<FirewallBackendName>();
  for (const backend of new Set(networks.map((n) => n.backend))) {
    const fw = await tryOpen(backend);
    if (fw) inUse.add(fw.backend);
  }
  const out: BackendIsolation[] = [];
  for (const name of ['iptables', 'nftables'] as const) {
    const firewall = await tryOpen(name);
    if (!firewall) continue;
    const { isolation } = await firewall.describe();
    const want = inUse.has(name) ? networks.map(({ network, bridge }) => ({ network, bridge })) : [];
    out.push({ firewall, want, held: isolation.networks, hooked: isolation.hooked });
  }
  return out;
}

const same = (a: NetworkIsolation, b: NetworkIsolation) => a.bridge === b.bridge && a.network === b.network;

/** Makes the backends hold exactly what `networks` need (only the differences are changed). */
export async function syncIsolation(networks: readonly IsolatedNetwork[]): Promise<void> {
  const failures = new ErrorCollector();
  for (const b of await compare(networks)) {
    const fw = b.firewall;
    for (const n of b.held.filter((h) => !b.want.some((w) => w.bridge === h.bridge))) {
      await failures.attempt(undefined, () => fw.teardownNetworkIsolation(n));
    }
    // Not hooked (a flushed FORWARD, a flushed set): every network is set up again, which restores the hook.
    for (const n of b.want.filter((w) => !b.hooked || !b.held.some((h) => same(h, w)))) {
      await failures.attempt(undefined, () => fw.setupNetworkIsolation(n));
    }
  }
  failures.throwIfAny('update the isolation between networks');
}

/** How the backends' isolation differs from what `networks` need, one line per backend; empty when in sync. */
export async function isolationDrift(networks: readonly IsolatedNetwork[]): Promise<string[]> {
  const out: string[] = [];
  const names = (list: NetworkIsolation[]) =>
    `[${list
      .map((n) => n.bridge)
      .sort()
      .join(', ')}]`;
  for (const b of await compare(networks)) {
    const inSync =
      b.held.length === b.want.length && b.want.every((w) => b.held.some((h) => same(h, w))) && (b.hooked || !b.want.length);
    if (inSync) continue;
    const unhooked = b.held.length && !b.hooked ? ' (not consulted by forwarding)' : '';
    out.push(`${b.firewall.backend} isolates ${names(b.held)}${unhooked}, the networks need ${names(b.want)}`);
  }
  return out;
}
