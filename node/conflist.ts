/**
 * The node network's conflist: bridge + host-local on the node subnet + portmap, with the reference plugins' keys
 * only (masquerade is the agent's job, not the bridge's), so kubelet/containerd with the reference plugins and
 * `ctnet run --network NAME` use the same file. One file content, two places: the CNI conf dir and ctnet's
 * networks dir; both name the same host-local dataDir, so the two never hand out one address twice.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { log } from '../core/index.js';
import { ctnetPaths, NetworkStore, syncIsolation } from '../network/index.js';
import { nodeBridgeName } from './names.js';
import { nthAddress } from './subnets.js';

export interface NodeConflistInput {
  network: string;
  subnet: string;
  clusterCidr: string;
  mtu: number;
  /** host-local's dataDir (ctnet's lease directory). */
  leaseDir: string;
  /** portmap's reservation directory (ctnet's, beside the leases). */
  portmapStateDir: string;
  /** The firewall backend portmap uses: the node's own rules' (a reference key since plugins v1.5). */
  firewall: 'iptables' | 'nftables';
}

export function buildNodeConflist(input: NodeConflistInput): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: input.network,
    plugins: [
      {
        type: 'bridge',
        bridge: nodeBridgeName,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        mtu: input.mtu,
        ipam: {
          type: 'host-local',
          dataDir: input.leaseDir,
          ranges: [[{ subnet: input.subnet, gateway: nthAddress(input.subnet, 1) }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      {
        type: 'portmap',
        capabilities: { portMappings: true },
        snat: true,
        backend: input.firewall,
        stateDir: input.portmapStateDir,
      },
    ],
    // ctnet's own metadata (other runtimes ignore unknown keys): `ctnet network ls` shows it as the node network.
    ctnet: {
      created: new Date().toISOString(),
      internal: false,
      isolate: true,
      options: {},
      node: { clusterCidr: input.clusterCidr, subnet: input.subnet },
    },
  };
}

export function writeConflist(file: string, conflist: Record<string, unknown>): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(conflist, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, file);
}

export function removeConflists(files: readonly string[]): void {
  for (const f of files) rmSync(f, { force: true });
}

export function networksDirFile(networksDir: string, network: string): string {
  return join(networksDir, `${network}.conflist`);
}

/**
 * The isolation chains between ctnet's networks follow the network list (as `network create`/`rm` keep them):
 * the node network appearing or going changes it. A failure is logged; `debug doctor --fix` repairs isolation.
 */
export async function refreshIsolation(root: string): Promise<void> {
  try {
    await syncIsolation(new NetworkStore(ctnetPaths(root), []).isolatedNetworks());
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'node: failed to update the isolation rules between networks');
  }
}
