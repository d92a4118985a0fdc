/**
 * A container as network management sees it: its network namespace and its attachments. The runner makes these
 * views of its records (runner/containers.ts); this folder makes them of the attachments cached by its CNI
 * runtime (`debug cni add`, `network connect`). The debugger reads both.
 */
import { existsSync, readlinkSync, statSync } from 'node:fs';
import { CtnetError, ErrorCode, type PortMapping, type PortProtocol } from '../core/index.js';
import { CniRuntime } from './cni-runtime.js';
import type { CtnetPaths } from './paths.js';

export interface ContainerAttachment {
  network: string;
  ifname: string;
  /** CIDR addresses from the ADD result. */
  addresses: string[];
  gateways: string[];
  /** Host-side interface names from the result (veth, bridge). */
  hostInterfaces: string[];
  /** The conflist text the attachment was made with, when known. */
  conflist?: string;
}

export interface ContainerView {
  id: string;
  name?: string;
  status?: string;
  pid?: number;
  netns?: string;
  attachments: ContainerAttachment[];
  ports: PortMapping[];
  source: 'runner' | 'cni-cache' | 'netns';
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The addresses, gateways and host-side interfaces a CNI ADD result names. */
export function attachmentOfResult(result: unknown): Pick<ContainerAttachment, 'addresses' | 'gateways' | 'hostInterfaces'> {
  const out = { addresses: [] as string[], gateways: [] as string[], hostInterfaces: [] as string[] };
  if (!isObject(result)) return out;
  const ifaces = Array.isArray(result.interfaces) ? result.interfaces.filter(isObject) : [];
  for (const i of ifaces) if (typeof i.name === 'string' && !i.sandbox) out.hostInterfaces.push(i.name);
  const ips = Array.isArray(result.ips) ? result.ips.filter(isObject) : [];
  for (const ip of ips) {
    if (typeof ip.address === 'string') out.addresses.push(ip.address);
    if (typeof ip.gateway === 'string') out.gateways.push(ip.gateway);
  }
  return out;
}

/** The portMappings capability argument a cached attachment was made with. */
function portsFrom(list: unknown): PortMapping[] {
  if (!Array.isArray(list)) return [];
  return list.filter(isObject).flatMap((p) =>
    typeof p.hostPort === 'number' && typeof p.containerPort === 'number'
      ? [
          {
            hostIP: typeof p.hostIP === 'string' && p.hostIP ? p.hostIP : undefined,
            hostPort: p.hostPort,
            containerPort: p.containerPort,
            protocol: (typeof p.protocol === 'string' ? p.protocol.toLowerCase() : 'tcp') as PortProtocol,
          },
        ]
      : [],
  );
}

/** Attachments made through `ctnet debug cni add`, one view per container ID. */
export function cachedContainers(paths: CtnetPaths): ContainerView[] {
  const cache = new CniRuntime({ invoke: () => Promise.reject(new Error('read only')) }, paths.cniResults, []);
  const byId = new Map<string, ContainerView>();
  for (const c of cache.cachedAttachments()) {
    let view = byId.get(c.containerId);
    if (!view) {
      view = { id: c.containerId, netns: c.netns, attachments: [], ports: [], source: 'cni-cache' };
      byId.set(c.containerId, view);
    }
    view.attachments.push({
      network: c.networkName,
      ifname: c.ifName,
      conflist: Buffer.from(c.config, 'base64').toString('utf8'),
      ...attachmentOfResult(c.result),
    });
    view.ports.push(...portsFrom(c.capabilityArgs?.portMappings));
  }
  return [...byId.values()];
}

/** Whether the container's network namespace still exists (its file, or its process). */
export function netnsAlive(c: ContainerView): boolean {
  if (c.pid !== undefined && existsSync(`/proc/${c.pid}/ns/net`)) return true;
  if (!c.netns) return false;
  try {
    statSync(c.netns);
    return true;
  } catch {
    return false;
  }
}

/** The path to enter a container's network namespace by. */
export function netnsPathOf(c: ContainerView): string {
  if (c.netns && existsSync(c.netns)) return c.netns;
  if (c.pid !== undefined && existsSync(`/proc/${c.pid}/ns/net`)) return `/proc/${c.pid}/ns/net`;
  throw new CtnetError(ErrorCode.invalidNetns, `the network namespace of ${c.name ?? c.id} is gone`, {
    hint: 'the container has stopped; `ctnet debug doctor` finds what it left behind',
  });
}

/** The namespace's identity (`net:[inode]`), to tell namespaces apart. */
export function netnsId(path: string): string | undefined {
  try {
    return `net:[${statSync(path).ino}]`;
  } catch {
    try {
      return readlinkSync(path);
    } catch {
      return undefined;
    }
  }
}
