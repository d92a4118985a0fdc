/**
 * `debug graph`: the topology as data — bridges (with their network and addresses), the veths on
 * them, the container each veth leads to (matched by the result's host interface, or by the veth
 * peer's index inside known container namespaces), and published ports.
 */
import { bridgeOf, type ContainerView, type CtnetPaths, NetworkStore, netnsAlive, netnsPathOf } from '../network/index.js';
import { knownContainers } from '../runner/index.js';
import { links } from './kernel.js';
import { isUp, kindOf } from './report.js';

export interface TopologyPort {
  name: string;
  up: boolean;
  container?: { id: string; name?: string; ifname: string; addresses: string[]; ports: string[] };
}

export interface TopologyBridge {
  name: string;
  /** False for a network whose bridge no container has created yet. */
  exists: boolean;
  up: boolean;
  addresses: string[];
  networks: string[];
  ports: TopologyPort[];
}

export interface Topology {
  bridges: TopologyBridge[];
  /** Known containers not found on any bridge (host/none mode, or their veth is gone). */
  detached: { id: string; name?: string; reason: string }[];
}

function portText(c: ContainerView): string[] {
  return c.ports.map((p) => `${p.hostIP ?? '*'}:${p.hostPort}->${p.containerPort}/${p.protocol}`);
}

export async function topology(paths: CtnetPaths): Promise<Topology> {
  const store = new NetworkStore(paths);
  const hostLinks = await links();
  const networksByBridge = new Map<string, string[]>();
  for (const net of store.all()) {
    const b = bridgeOf(net.list);
    if (b) networksByBridge.set(b, [...(networksByBridge.get(b) ?? []), net.list.name]);
  }
  const containers = knownContainers(paths).filter(netnsAlive);
  // Each live container's interfaces, with the host ifindex of their veth peers.
  const ctrIfaces = await Promise.all(containers.map(async (c) => ({ c, links: await links(netnsPathOf(c)).catch(() => []) })));
  const placed = new Set<string>();
  const bridges: TopologyBridge[] = hostLinks
    .filter((l) => kindOf(l) === 'bridge' && (networksByBridge.has(l.ifname) || hostLinks.some((p) => p.master === l.ifname)))
    .map((br) => ({
      name: br.ifname,
      exists: true,
      up: isUp(br),
      addresses: (br.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`),
      networks: networksByBridge.get(br.ifname) ?? [],
      ports: hostLinks
        .filter((p) => p.master === br.ifname)
        .map((p) => {
          const match = ctrIfaces.flatMap(({ c, links: ls }) =>
            ls.filter((l) => l.link_index === p.ifindex && kindOf(l) === 'veth').map((l) => ({ c, l })),
          )[0];
          const port: TopologyPort = { name: p.ifname, up: isUp(p) };
          if (match) {
            placed.add(match.c.id);
            port.container = {
              id: match.c.id,
              name: match.c.name,
              ifname: match.l.ifname,
              addresses: (match.l.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`),
              ports: portText(match.c),
            };
          }
          return port;
        }),
    }));
  for (const name of networksByBridge.keys()) {
    if (!bridges.some((b) => b.name === name)) {
      // A network whose bridge does not exist yet (no container has joined it since boot).
      bridges.push({ name, exists: false, up: false, addresses: [], networks: networksByBridge.get(name) ?? [], ports: [] });
    }
  }
  const detached = containers
    .filter((c) => !placed.has(c.id))
    .map((c) => ({
      id: c.id,
      name: c.name,
      reason: c.attachments.length ? 'its veth is on no bridge' : 'no bridge network (host or none mode)',
    }));
  return { bridges, detached };
}
