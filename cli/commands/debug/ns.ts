/** `ctnet debug ns ls` and `ctnet debug exec`: find network namespaces and run host tools inside them. */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, ErrorCode } from '../../../core/index.js';
import { links, namedNetns } from '../../../debug/index.js';
import { ctnetPaths, netnsAlive, netnsId, netnsPathOf } from '../../../network/index.js';
import { knownContainers, resolveTarget } from '../../../runner/index.js';
import { printJson, printTable } from '../../output.js';

interface NsRow {
  id: string;
  path: string;
  kind: 'container' | 'named' | 'runner-file';
  container?: string;
  interfaces: string[];
  addresses: string[];
}

export async function listNamespaces(opts: { json?: boolean }): Promise<void> {
  const paths = ctnetPaths();
  const seen = new Map<string, NsRow>();
  const add = (path: string, kind: NsRow['kind'], container?: string) => {
    const id = netnsId(path);
    if (!id) return;
    const row = seen.get(id);
    if (row) {
      row.container ??= container;
      return;
    }
    seen.set(id, { id, path, kind, container, interfaces: [], addresses: [] });
  };
  for (const c of knownContainers(paths)) {
    if (!netnsAlive(c)) continue;
    add(netnsPathOf(c), 'container', c.name ?? c.id.slice(0, 12));
  }
  for (const n of await namedNetns()) add(n.path, 'named');
  const runnerDir = join(paths.root, 'netns');
  if (existsSync(runnerDir)) for (const f of readdirSync(runnerDir)) add(join(runnerDir, f), 'runner-file');
  const rows = [...seen.values()];
  // A host may hold a thousand namespaces: read them a few at a time, and one that vanishes or hangs
  // meanwhile is shown without interfaces rather than failing the listing.
  const queue = [...rows];
  const worker = async () => {
    for (let r = queue.shift(); r; r = queue.shift()) {
      const ls = await links(r.path).catch(() => []);
      r.interfaces = ls.map((l) => l.ifname);
      r.addresses = ls.flatMap((l) =>
        (l.addr_info ?? []).filter((a) => a.scope !== 'host' && a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`),
      );
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  if (opts.json) return printJson(rows);
  printTable(
    ['NETNS', 'PATH', 'CONTAINER', 'INTERFACES', 'ADDRESSES'],
    rows.map((r) => [r.id, r.path, r.container ?? '-', r.interfaces.join(','), r.addresses.join(',') || '-']),
  );
}

/**
 * Runs CMD with the host's tools inside the target's network namespace only (like netshoot:
 * tcpdump, ss, ip, curl from the host see the container's network). This spawns directly rather
 * than through core/exec because the command must own the terminal (stdio inherited, signals).
 */
export async function execIn(target: string, command: string[]): Promise<void> {
  if (command.length === 0) throw new CtnetError(ErrorCode.invalidConfig, 'debug exec needs a command after --');
  const netns = netnsPathOf(resolveTarget(target, ctnetPaths()));
  const child = spawn('nsenter', [`--net=${netns}`, '--', ...command], { stdio: 'inherit' });
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', (e) => reject(new CtnetError(ErrorCode.io, `failed to run nsenter: ${e.message}`, { cause: e })));
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 + 15 : 1)));
  });
  process.exitCode = code;
}
