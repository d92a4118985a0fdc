/**
 * Where ctnet keeps its state and configuration: one root directory (CTNET_ROOT, default
 * /var/lib/ctnet) shared with the runner, so every test can use a root of its own.
 * The directory names below are part of the on-host contract (other CNI runtimes read the
 * network directory, and the lease directory is host-local's dataDir).
 */
import { join } from 'node:path';

export const defaultRoot = '/var/lib/ctnet';

export function ctnetRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.CTNET_ROOT || defaultRoot;
}

/**
 * Other runtimes' network config directories, whose networks count for names and subnet clashes and
 * which `debug cni` searches: NETCONFPATH (colon-separated, as libcni's tools read it), else /etc/cni/net.d.
 */
export function foreignNetconfDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const given = env.NETCONFPATH?.split(':').filter(Boolean);
  return given?.length ? given : ['/etc/cni/net.d'];
}

export interface CtnetPaths {
  root: string;
  /** Conflists, one `<name>.conflist` per network. */
  networks: string;
  /** Cached ADD results, libcni style: `<network>-<containerID>-<ifname>`. */
  cniResults: string;
  /** host-local dataDir: `<leases>/<network>/<ip>`. */
  leases: string;
  /** The runner's container state (read only here). */
  containers: string;
}

export function ctnetPaths(root = ctnetRoot()): CtnetPaths {
  return {
    root,
    networks: join(root, 'networks'),
    cniResults: join(root, 'cni-results'),
    leases: join(root, 'ipam'),
    containers: join(root, 'containers'),
  };
}
