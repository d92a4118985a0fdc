/** The actions behind `ctnet network …` (loaded only when one runs). */
import { CtnetError, DefaultExecutor, ErrorCode } from '../../../core/index.js';
import { links } from '../../../debug/index.js';
import { withNetlink } from '../../../netns/index.js';
import {
  type Attachment,
  bridgePrefix,
  connectContainer,
  ctnetPaths,
  disconnectContainer,
  type LoadedNetwork,
  metadataOf,
  NetworkStore,
  type NetworkSummary,
  syncHostsFiles,
  syncIsolation,
} from '../../../network/index.js';
import { builtinPlugins } from '../../../plugins/index.js';
import { knownContainers, resolveTarget, runnerContainers, runnerRuntime } from '../../../runner/index.js';
import { printJson, printTable } from '../../output.js';

function store(): NetworkStore {
  return new NetworkStore(ctnetPaths());
}

function parseOptions(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CtnetError(ErrorCode.invalidConfig, `invalid -o ${JSON.stringify(pair)}: expected key=value`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Isolation is kernel state beside the conflists: a failure is reported but does not undo the change. */
async function refreshIsolation(s: NetworkStore): Promise<void> {
  try {
    await syncIsolation(s.isolatedNetworks());
  } catch (err) {
    process.stderr.write(`ctnet: warning: ${(err as Error).message}\n`);
    process.stderr.write('hint: run `ctnet debug doctor --fix` once the firewall works\n');
  }
}

export async function createNetwork(
  name: string,
  opts: {
    subnet: string[];
    gateway: string[];
    ipRange: string[];
    ipv6?: boolean;
    internal?: boolean;
    mtu?: number;
    opt: string[];
  },
): Promise<void> {
  if (opts.mtu !== undefined && Number.isNaN(opts.mtu))
    throw new CtnetError(ErrorCode.invalidConfig, 'invalid --mtu: not a number');
  const s = store();
  await s.create({
    name,
    subnets: opts.subnet,
    gateways: opts.gateway,
    ipRanges: opts.ipRange,
    ipv6: !!opts.ipv6,
    internal: !!opts.internal,
    mtu: opts.mtu,
    options: parseOptions(opts.opt),
  });
  await refreshIsolation(s);
  process.stdout.write(`${name}\n`);
}

function attachmentsJson(list: Attachment[]) {
  return list.map((a) => ({
    containerId: a.containerId,
    name: a.name,
    ifname: a.ifname,
    addresses: a.addresses,
    netns: a.netns,
    sources: a.sources,
  }));
}

export async function listNetworksCommand(opts: { json?: boolean; quiet?: boolean }): Promise<void> {
  const s = store();
  const runner = runnerContainers(s.paths);
  const rows = s.all().map((net) => ({ ...s.summary(net), containers: s.attachments(net, runner).length }));
  if (opts.json) return printJson(rows);
  if (opts.quiet) {
    for (const r of rows) process.stdout.write(`${r.name}\n`);
    return;
  }
  printTable(
    ['NAME', 'BRIDGE', 'SUBNETS', 'INTERNAL', 'CONTAINERS', 'PLUGINS', 'FILE'],
    rows.map((r) => [
      r.name,
      r.bridge ?? '-',
      r.subnets.join(',') || '-',
      r.internal ? 'yes' : 'no',
      r.containers,
      r.plugins.join(','),
      r.file,
    ]),
  );
}

interface NetworkReport extends NetworkSummary {
  bridgeState: string;
  isolated: boolean;
  options: Record<string, string>;
  created?: string;
  containers: ReturnType<typeof attachmentsJson>;
  config: LoadedNetwork['list'];
}

export async function inspectNetworks(names: string[], opts: { json?: boolean }): Promise<void> {
  const s = store();
  const hostLinks = await links();
  const isolated = new Set(s.isolatedBridges());
  const runner = runnerContainers(s.paths);
  const reports: NetworkReport[] = names.map((name) => {
    const net = s.get(name);
    const summary = s.summary(net);
    const meta = metadataOf(net.list);
    const link = hostLinks.find((l) => l.ifname === summary.bridge);
    return {
      ...summary,
      bridgeState: link
        ? // Administrative state: a bridge's operstate stays "unknown" until a port carries traffic.
          `${link.flags.includes('UP') ? 'up' : 'down'}, ${hostLinks.filter((l) => l.master === link.ifname).length} ports`
        : 'not created yet',
      isolated: summary.bridge !== undefined && isolated.has(summary.bridge),
      options: meta?.options ?? {},
      created: meta?.created,
      containers: attachmentsJson(s.attachments(net, runner)),
      config: net.list,
    };
  });
  if (opts.json) return printJson(reports);
  reports.forEach((r, i) => {
    if (i > 0) process.stdout.write('\n');
    const pairs: [string, string][] = [
      ['Name', r.name],
      ['File', r.file],
      ['Managed', r.managed ? 'yes (ctnet network)' : 'no (foreign conflist)'],
      ['Bridge', r.bridge ? `${r.bridge} (${r.bridgeState})` : '-'],
      ['Subnets', r.subnets.map((sn, j) => (r.gateways[j] ? `${sn} via ${r.gateways[j]}` : sn)).join(', ') || '-'],
      ['Internal', r.internal ? 'yes' : 'no'],
      ['Isolated', r.isolated ? 'yes' : 'no'],
      ['Plugins', r.plugins.join(' → ')],
    ];
    if (r.created) pairs.push(['Created', r.created]);
    if (Object.keys(r.options).length)
      pairs.push([
        'Options',
        Object.entries(r.options)
          .map(([k, v]) => `${k}=${v}`)
          .join(' '),
      ]);
    const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
    for (const [k, v] of pairs) process.stdout.write(`${`${k}:`.padEnd(width)}  ${v}\n`);
    process.stdout.write('\n');
    if (r.containers.length === 0) {
      process.stdout.write('No containers attached.\n');
      return;
    }
    printTable(
      ['CONTAINER', 'NAME', 'IFNAME', 'ADDRESSES', 'NETNS', 'SEEN IN'],
      r.containers.map((c) => [
        c.containerId,
        c.name ?? '-',
        c.ifname,
        c.addresses.join(',') || '-',
        c.netns ?? '-',
        c.sources.join(','),
      ]),
    );
  });
}

export async function removeNetworks(names: string[]): Promise<void> {
  const s = store();
  const errors: string[] = [];
  const bridges: (string | undefined)[] = [];
  for (const name of names) {
    try {
      const net = s.remove(name, runnerContainers(s.paths));
      bridges.push(s.summary(net).bridge);
      process.stdout.write(`${net.list.name}\n`);
    } catch (err) {
      errors.push((err as Error).message);
      if (names.length === 1) throw err;
    }
  }
  await refreshIsolation(s);
  await deleteUnusedBridges(s, bridges);
  if (errors.length) throw new CtnetError(ErrorCode.exists, errors.join('; '));
}

/**
 * The bridge of a removed network stays after its last DEL (CNI never deletes it): drop it when it
 * is one ctnet named (never a bridge the user pointed a network at) and nothing hangs on it.
 */
async function deleteUnusedBridges(s: NetworkStore, bridges: (string | undefined)[]): Promise<void> {
  const stillUsed = new Set(s.all().map((n) => s.summary(n).bridge));
  const hostLinks = await links();
  for (const bridge of bridges) {
    if (!bridge?.startsWith(bridgePrefix) || stillUsed.has(bridge)) continue;
    const link = hostLinks.find((l) => l.ifname === bridge && l.linkinfo?.info_kind === 'bridge');
    if (!link || hostLinks.some((l) => l.master === bridge)) continue;
    await withNetlink(undefined, (nl) => nl.deleteLink(bridge)).catch(() => false);
  }
}

export async function pruneNetworks(): Promise<void> {
  const s = store();
  const removed: string[] = [];
  const bridges: (string | undefined)[] = [];
  const runner = runnerContainers(s.paths);
  for (const net of s.managed()) {
    if (!metadataOf(net.list)?.created || s.attachments(net, runner).length) continue;
    s.remove(net.list.name, runner);
    removed.push(net.list.name);
    bridges.push(s.summary(net).bridge);
  }
  await refreshIsolation(s);
  await deleteUnusedBridges(s, bridges);
  for (const name of removed) process.stdout.write(`${name}\n`);
}

/** The runner's runtime (plugin search path, executor, environment), so connect speaks with the same plugins as run. */
function runtimeForContainers() {
  return runnerRuntime(new DefaultExecutor(builtinPlugins), ctnetPaths());
}

/** After the attachment changed: names are a convenience, so a failure warns instead of failing the command. */
function refreshNames(paths: ReturnType<typeof ctnetPaths>): void {
  try {
    syncHostsFiles(paths, knownContainers(paths));
  } catch (err) {
    process.stderr.write(`ctnet: warning: failed to update container hosts files: ${(err as Error).message}\n`);
  }
}

export async function connectCommand(network: string, container: string): Promise<void> {
  const paths = ctnetPaths();
  const net = store().get(network);
  await connectContainer(runtimeForContainers(), net, resolveTarget(container, paths));
  refreshNames(paths);
}

export async function disconnectCommand(network: string, container: string): Promise<void> {
  const paths = ctnetPaths();
  await disconnectContainer(runtimeForContainers(), network, resolveTarget(container, paths));
  refreshNames(paths);
}
