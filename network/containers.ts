/**
 * Containers as the debugger sees them: the runner's records (`containers/<id>/container.json`,
 * read leniently: this folder may not import the runner) merged with attachments made through
 * `ctnet debug cni` (the CNI result cache), and bare network namespaces given by path or name.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, ErrorCode } from '../core/index.js';
import { CniRuntime } from './cni-runtime.js';
import type { CtnetPaths } from './paths.js';

export interface PublishedPort {
  hostIP?: string;
  hostPort: number;
  containerPort: number;
  protocol: string;
}

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
  ports: PublishedPort[];
  source: 'runner' | 'cni-cache' | 'netns';
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function fromResult(result: unknown): Pick<ContainerAttachment, 'addresses' | 'gateways' | 'hostInterfaces'> {
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

function portsFrom(list: unknown): PublishedPort[] {
  if (!Array.isArray(list)) return [];
  return list.filter(isObject).flatMap((p) =>
    typeof p.hostPort === 'number' && typeof p.containerPort === 'number'
      ? [
          {
            hostIP: typeof p.hostIP === 'string' && p.hostIP ? p.hostIP : undefined,
            hostPort: p.hostPort,
            containerPort: p.containerPort,
            protocol: typeof p.protocol === 'string' ? p.protocol.toLowerCase() : 'tcp',
          },
        ]
      : [],
  );
}

function networkNameOf(conflist: unknown): string | undefined {
  if (typeof conflist !== 'string') return undefined;
  try {
    const n = (JSON.parse(conflist) as { name?: unknown }).name;
    return typeof n === 'string' ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The runner's containers. */
export function runnerContainers(paths: CtnetPaths): ContainerView[] {
  let ids: string[];
  try {
    ids = readdirSync(paths.containers);
  } catch {
    return [];
  }
  const out: ContainerView[] = [];
  for (const id of ids) {
    if (id.startsWith('.')) continue; // a container being removed (runner/state.ts removeRecord)
    let rec: unknown;
    try {
      rec = JSON.parse(readFileSync(join(paths.containers, id, 'container.json'), 'utf8'));
    } catch {
      continue;
    }
    if (!isObject(rec) || !isObject(rec.config) || !isObject(rec.state)) continue;
    const { config, state } = rec;
    const attachments: ContainerAttachment[] = [];
    const att = state.attachment;
    if (isObject(att)) {
      attachments.push({
        network: typeof att.network === 'string' ? att.network : (networkNameOf(att.conflist) ?? '?'),
        ifname: typeof att.ifname === 'string' ? att.ifname : 'eth0',
        conflist: typeof att.conflist === 'string' ? att.conflist : undefined,
        ...fromResult(att.result),
      });
    }
    out.push({
      id: typeof config.id === 'string' ? config.id : id,
      name: typeof config.name === 'string' ? config.name : undefined,
      status: typeof state.status === 'string' ? state.status : undefined,
      pid: typeof state.pid === 'number' ? state.pid : undefined,
      netns: typeof state.netnsPath === 'string' ? state.netnsPath : undefined,
      attachments,
      ports: portsFrom(state.ports),
      source: 'runner',
    });
  }
  return out;
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
      ...fromResult(c.result),
    });
    view.ports.push(...portsFrom(c.capabilityArgs?.portMappings));
  }
  return [...byId.values()];
}

/**
 * Every container ctnet knows of: the runner's, with the attachments `network connect` added
 * (cached like debug-cni ones), then debug-cni attachments of other IDs.
 */
export function knownContainers(paths: CtnetPaths): ContainerView[] {
  const runner = runnerContainers(paths);
  const byId = new Map(runner.map((c) => [c.id, c]));
  const others: ContainerView[] = [];
  for (const cached of cachedContainers(paths)) {
    const owner = byId.get(cached.id);
    if (!owner) {
      others.push(cached);
      continue;
    }
    for (const a of cached.attachments) {
      if (!owner.attachments.some((o) => o.network === a.network && o.ifname === a.ifname)) owner.attachments.push(a);
    }
  }
  return [...runner, ...others];
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

/**
 * Resolves what a person typed: a netns path, a container name / ID / unique ID prefix, or the
 * name of a namespace under /run/netns.
 */
export function resolveTarget(ref: string, paths: CtnetPaths): ContainerView {
  if (ref.includes('/')) {
    if (!existsSync(ref)) throw new CtnetError(ErrorCode.invalidNetns, `network namespace ${ref} does not exist`);
    const known = knownContainers(paths).find((c) => c.netns === ref);
    return known ?? { id: ref, netns: ref, attachments: [], ports: [], source: 'netns' };
  }
  const all = knownContainers(paths);
  const exact = all.find((c) => c.name === ref || c.id === ref);
  if (exact) return exact;
  const prefixed = all.filter((c) => c.id.startsWith(ref));
  if (prefixed.length === 1 && prefixed[0]) return prefixed[0];
  if (prefixed.length > 1) throw new CtnetError(ErrorCode.invalidConfig, `container id prefix "${ref}" is ambiguous`);
  const named = `/run/netns/${ref}`;
  if (existsSync(named)) return { id: ref, name: ref, netns: named, attachments: [], ports: [], source: 'netns' };
  throw new CtnetError(ErrorCode.unknownContainer, `no such container or network namespace: ${ref}`, {
    hint: 'list them with `ctnet debug ns ls`',
  });
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
