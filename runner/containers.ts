/**
 * The runner's containers as network management and the debugger see them (network/'s ContainerView), made from
 * the runner's own records, merged with the attachments `network connect` and `debug cni add` cached, and bare
 * network namespaces given by path or name.
 */
import { existsSync } from 'node:fs';
import { CtnetError, ErrorCode } from '../core/index.js';
import {
  attachmentOfResult,
  type ContainerAttachment,
  type ContainerView,
  type CtnetPaths,
  cachedContainers,
} from '../network/index.js';
import { type ContainerRecord, listRecords } from './state.js';

/** One record as a view: its first network's attachment and its published ports. */
export function containerView(rec: ContainerRecord): ContainerView {
  const { config, state } = rec;
  const attachments: ContainerAttachment[] = [];
  const att = state.attachment;
  if (att) {
    attachments.push({
      network: att.network,
      ifname: att.ifname,
      conflist: att.conflist,
      ...attachmentOfResult(att.result),
    });
  }
  return {
    id: config.id,
    name: config.name,
    status: state.status,
    pid: state.pid,
    netns: state.netnsPath,
    attachments,
    ports: state.ports,
    source: 'runner',
  };
}

/** The runner's containers, oldest first. */
export function runnerContainers(paths: Pick<CtnetPaths, 'containers'>): ContainerView[] {
  return listRecords(paths).map(containerView);
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
