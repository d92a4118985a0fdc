/**
 * `network connect` / `disconnect`: a second (third, …) interface for a running container, made
 * through the same CNI runtime as `debug cni` (so the result is cached like libcni's, and DEL and
 * `debug doctor` find it). The container's first network keeps the default route: the extra
 * attachment's conflist is a variant without IPAM routes and without isDefaultGateway (Docker's
 * default gw-priority behaviour).
 */
import { CtnetError, ErrorCode, ErrorCollector, type NetConf } from '../core/index.js';
import type { CniRuntime } from './cni-runtime.js';
import type { LoadedNetwork } from './conflist.js';
import { parseNetworkConfig } from './conflist.js';
import { type ContainerView, netnsAlive, netnsPathOf } from './containers.js';

/** The conflist used for an extra attachment: no default route over it. */
export function secondaryVariant(net: LoadedNetwork): LoadedNetwork {
  const list = JSON.parse(net.raw) as { plugins: NetConf[] };
  for (const plugin of list.plugins) {
    if (plugin.type === 'bridge') plugin.isDefaultGateway = false;
    const ipam = plugin.ipam as Record<string, unknown> | undefined;
    if (ipam && Array.isArray(ipam.routes)) {
      ipam.routes = (ipam.routes as { dst?: string }[]).filter((r) => r.dst !== '0.0.0.0/0' && r.dst !== '::/0');
      if ((ipam.routes as unknown[]).length === 0) delete ipam.routes;
    }
  }
  const raw = `${JSON.stringify(list, null, 2)}\n`;
  return { list: { ...net.list, plugins: list.plugins }, file: net.file, raw };
}

/** The next free `ethN` of a container. */
export function nextIfname(c: ContainerView): string {
  const used = new Set(c.attachments.map((a) => a.ifname));
  for (let i = 0; ; i++) if (!used.has(`eth${i}`)) return `eth${i}`;
}

export async function connectContainer(
  runtime: CniRuntime,
  net: LoadedNetwork,
  c: ContainerView,
): Promise<{ ifname: string; result: Record<string, unknown> }> {
  const who = c.name ?? c.id;
  if (c.source !== 'runner' || c.status !== 'running' || !netnsAlive(c)) {
    throw new CtnetError(
      ErrorCode.unknownContainer,
      `failed to connect ${who} to network "${net.list.name}": the container is not running`,
    );
  }
  if (c.attachments.some((a) => a.network === net.list.name)) {
    throw new CtnetError(ErrorCode.exists, `failed to connect ${who} to network "${net.list.name}": already connected`);
  }
  const ifname = nextIfname(c);
  const result = await runtime.add(secondaryVariant(net), { containerId: c.id, netns: netnsPathOf(c), ifname });
  return { ifname, result };
}

export async function disconnectContainer(runtime: CniRuntime, network: string, c: ContainerView): Promise<string> {
  const who = c.name ?? c.id;
  const att = c.attachments.find((a) => a.network === network);
  if (!att)
    throw new CtnetError(ErrorCode.unknownContainer, `failed to disconnect ${who}: it is not connected to network "${network}"`);
  const cached = runtime.readCache(network, c.id, att.ifname);
  if (!cached) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `failed to disconnect ${who} from network "${network}": that is the network it was started on`,
      { hint: `stop the container (ctnet stop ${who}) to detach it from its first network` },
    );
  }
  const raw = Buffer.from(cached.config, 'base64').toString('utf8');
  await runtime.del(
    { list: parseNetworkConfig(raw, 'cache'), file: '', raw },
    { containerId: c.id, ifname: att.ifname, netns: netnsAlive(c) ? netnsPathOf(c) : '' },
  );
  return att.ifname;
}

/**
 * For the runner's teardown: DEL every extra attachment (`network connect`) of a container, so
 * stopping it leaks nothing. Errors are collected, every attachment is tried.
 */
export async function releaseExtraAttachments(runtime: CniRuntime, containerId: string, netns: string): Promise<CtnetError[]> {
  const failures = new ErrorCollector();
  for (const cached of runtime.cachedAttachments().filter((a) => a.containerId === containerId)) {
    await failures.attempt(undefined, () => {
      const raw = Buffer.from(cached.config, 'base64').toString('utf8');
      return runtime.del(
        { list: parseNetworkConfig(raw, 'cache'), file: '', raw },
        { containerId, ifname: cached.ifName, netns },
      );
    });
  }
  return failures.errors;
}
