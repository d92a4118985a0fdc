/**
 * Name resolution between containers on one user-defined network, by hosts files kept current
 * (nerdctl's approach; no resolver process to run, start, or keep alive). Each running container's
 * /etc/hosts is a bind mount of `containers/<id>/etc/hosts`; this rewrites a marked block at its
 * end listing the name of every other running container it shares a user-defined network with.
 * The file is rewritten in place (same inode), so the bind mount inside the container sees it.
 * The default network ("ctnet") gets no names, as Docker's default bridge gets none.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ContainerView, netnsAlive } from './containers.js';
import type { CtnetPaths } from './paths.js';

export const hostsBlockStart = '# ctnet: containers on shared networks (managed, rewritten on every change)';
export const hostsBlockEnd = '# ctnet: end';
/** The runner's default network: like Docker's default bridge, no name resolution. */
export const unnamedNetworks = new Set(['ctnet']);

export function hostsFileOf(paths: CtnetPaths, id: string): string {
  return join(paths.containers, id, 'etc', 'hosts');
}

/** Replaces (or appends) the managed block of a hosts file's text. */
export function withPeerBlock(text: string, peers: { ip: string; names: string[] }[]): string {
  const start = text.indexOf(hostsBlockStart);
  const end = text.indexOf(hostsBlockEnd);
  const base =
    start >= 0 && end > start ? text.slice(0, start) + text.slice(end + hostsBlockEnd.length).replace(/^\n/, '') : text;
  if (peers.length === 0) return base;
  const lines = peers.map((p) => `${p.ip}\t${p.names.join(' ')}`);
  return `${base.endsWith('\n') || base === '' ? base : `${base}\n`}${hostsBlockStart}\n${lines.join('\n')}\n${hostsBlockEnd}\n`;
}

/** The peers each running container should know: name → address on each shared user network. */
export function peerTable(containers: ContainerView[]): Map<string, { ip: string; names: string[] }[]> {
  const running = containers.filter((c) => c.source === 'runner' && c.status === 'running' && netnsAlive(c));
  const out = new Map<string, { ip: string; names: string[] }[]>();
  for (const c of running) {
    const mine = new Set(c.attachments.map((a) => a.network).filter((n) => !unnamedNetworks.has(n)));
    const peers: { ip: string; names: string[] }[] = [];
    for (const other of running) {
      if (other.id === c.id) continue;
      for (const a of other.attachments) {
        if (!mine.has(a.network)) continue;
        for (const cidr of a.addresses) {
          const names = [other.name, other.id.slice(0, 12)].filter((n): n is string => !!n);
          peers.push({ ip: cidr.split('/')[0] as string, names });
        }
      }
    }
    out.set(c.id, peers);
  }
  return out;
}

/**
 * Brings every running container's hosts file up to date; returns the IDs whose file changed. `containers`: every
 * container ctnet knows of (the runner's `knownContainers`), with all its attachments.
 */
export function syncHostsFiles(paths: CtnetPaths, containers: ContainerView[]): string[] {
  const changed: string[] = [];
  for (const [id, peers] of peerTable(containers)) {
    const file = hostsFileOf(paths, id);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const next = withPeerBlock(text, peers);
    if (next === text) continue;
    writeFileSync(file, next);
    changed.push(id);
  }
  return changed;
}
