/**
 * Shared fixtures of the firewall and portmap integration tests: containers made with plain `ip` commands (a bridge,
 * a veth pair, addresses, a default route) so these tests do not depend on the bridge plugin, a driver to call the
 * firewall library inside a sandbox namespace, and ruleset snapshots.
 */
import { join } from 'node:path';
import type { FirewallBackendName } from '../iptables/index.js';
import { forbiddenNetnsVar, ownNetnsId } from './driver-guard.js';
import { createNetns, netnsPath, nsRun, repoRoot, sh } from './sandbox.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** By absolute path: under npx, node_modules/.bin holds an unrelated npm program called `nft`. */
export const nftBin = '/usr/sbin/nft';

export const backends = ['iptables', 'nftables'] as const satisfies readonly FirewallBackendName[];

/** IPv6 on the host ↔ world link (documentation range, only inside the sandbox). */
export const worldLink6 = { hostAddr: '2001:db8:ff::1', worldAddr: '2001:db8:ff::2', prefix: 64 } as const;

export interface BridgeNet {
  bridge: string;
  gw4: string;
  gw6: string;
  prefix4: string;
  prefix6: string;
}

/** A bridge with IPv4 and IPv6 gateway addresses in the sandbox host, forwarding on (sandbox-local sysctls). */
export async function makeBridge(host: string, n = 22): Promise<BridgeNet> {
  const bridge = `ctbr${n}`;
  const net: BridgeNet = { bridge, gw4: `10.${n}.0.1`, gw6: `fd00:${n}::1`, prefix4: `10.${n}.0`, prefix6: `fd00:${n}:` };
  await sh('ip', ['-n', host, 'link', 'add', bridge, 'type', 'bridge']);
  await sh('ip', ['-n', host, 'addr', 'add', `${net.gw4}/24`, 'dev', bridge]);
  await sh('ip', ['-n', host, 'addr', 'add', `${net.gw6}/64`, 'dev', bridge, 'nodad']);
  await sh('ip', ['-n', host, 'link', 'set', bridge, 'up']);
  await nsRun(host, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  return net;
}

/** Adds IPv6 to the sandbox's world link (createSandbox makes it IPv4 only). */
export async function addWorldV6(host: string, world: string): Promise<void> {
  await sh('ip', ['-n', host, 'addr', 'add', `${worldLink6.hostAddr}/${worldLink6.prefix}`, 'dev', 'uplink0', 'nodad']);
  await sh('ip', ['-n', world, 'addr', 'add', `${worldLink6.worldAddr}/${worldLink6.prefix}`, 'dev', 'eth0', 'nodad']);
}

export interface Container {
  ns: string;
  ifname: string;
  hostVeth: string;
  ip4: string;
  ip6: string;
  /** Addresses in CIDR form, as a CNI result lists them. */
  cidrs: string[];
}

/** A "container": its own namespace, eth0 on the bridge with .i / ::i addresses, default routes via the bridge. */
export async function makeContainer(t: Teardown, host: string, net: BridgeNet, i: number): Promise<Container> {
  const ns = await createNetns(t, `c${i}`);
  const hostVeth = `vct${i}${ns.slice(4, 8)}`;
  const ip4 = `${net.prefix4}.${i}`;
  const ip6 = `${net.prefix6}:${i.toString(16)}`;
  await sh('ip', ['-n', host, 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await sh('ip', ['-n', host, 'link', 'set', hostVeth, 'master', net.bridge, 'up']);
  // As the bridge plugin's hairpinMode does: with br_netfilter active (bridge-nf-call-iptables=1) a container
  // reaching its own published port is DNATed at the bridge and must go back out of the port it came in by.
  await sh('ip', ['-n', host, 'link', 'set', hostVeth, 'type', 'bridge_slave', 'hairpin', 'on']);
  await sh('ip', ['-n', ns, 'addr', 'add', `${ip4}/24`, 'dev', 'eth0']);
  await sh('ip', ['-n', ns, 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
  await sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  await sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', net.gw4]);
  await sh('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', net.gw6]);
  return { ns, ifname: 'eth0', hostVeth, ip4, ip6, cidrs: [`${ip4}/24`, `${ip6}/64`] };
}

/** A CNI 1.1.0 result as the bridge plugin would return it for `c`. */
export function fakePrevResult(net: BridgeNet, c: Container): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    interfaces: [
      { name: net.bridge, mac: '02:00:00:00:00:01' },
      { name: c.hostVeth, mac: '02:00:00:00:00:02' },
      { name: c.ifname, mac: '02:00:00:00:00:03', sandbox: netnsPath(c.ns) },
    ],
    ips: [
      { address: `${c.ip4}/24`, gateway: net.gw4, interface: 2 },
      { address: `${c.ip6}/64`, gateway: net.gw6, interface: 2 },
    ],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
  };
}

export interface OpResult {
  ok: boolean;
  code?: number;
  message?: string;
  ms?: number;
  value?: unknown;
}

/** Runs firewall library operations inside `host` (see firewall-driver.ts). */
export async function firewallOps(
  host: string,
  backend: FirewallBackendName | 'auto',
  ops: { op: string; arg: unknown[] }[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<OpResult[]> {
  return (await firewallSession(host, backend, ops, extraEnv)).results;
}

/** firewallOps, also telling how nft scripts ran (`libnftables` or `program`; undefined for other backends). */
export async function firewallSession(
  host: string,
  backend: FirewallBackendName | 'auto',
  ops: { op: string; arg: unknown[] }[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ driver?: string; results: OpResult[] }> {
  return runDriver(host, 'firewall-driver.ts', { backend, ops }, extraEnv);
}

/** Runs the driver file `driver` of test-net/ inside `host` with `input` as JSON on stdin; parses what it prints. */
export async function runDriver<T>(host: string, driver: string, input: unknown, extraEnv: NodeJS.ProcessEnv = {}): Promise<T> {
  const r = await nsRun(host, process.execPath, ['--import', 'tsx', join(repoRoot, 'test-net', driver)], {
    input: JSON.stringify(input),
    env: { ...process.env, ...extraEnv, [forbiddenNetnsVar]: ownNetnsId() },
  });
  return JSON.parse(r.stdout) as T;
}

/** iptables-save (v4 and v6, counters stripped) and the nft ruleset of a namespace. */
export async function rulesetSnapshot(ns: string): Promise<string> {
  const strip = (s: string) =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/g, ''))
      .join('\n');
  const [v4, v6, nft] = await Promise.all([
    nsRun(ns, 'iptables-save', []).then((r) => strip(r.stdout)),
    nsRun(ns, 'ip6tables-save', []).then((r) => strip(r.stdout)),
    nftTablesExceptXtables(ns),
  ]);
  return `${v4}\n--- ip6tables ---\n${v6}\n--- nft ---\n${nft}`;
}

/** Every nft table except those iptables-nft manages (iptables-save shows those). */
async function nftTablesExceptXtables(ns: string): Promise<string> {
  const tables = (await nsRun(ns, nftBin, ['list', 'tables'])).stdout.split('\n').filter(Boolean);
  const xtables = /^table (ip|ip6) (nat|filter|mangle|raw|security)$/;
  const out: string[] = [];
  for (const line of tables.filter((l) => !xtables.test(l))) {
    out.push((await nsRun(ns, nftBin, ['list', ...line.split(' ')])).stdout);
  }
  return out.join('');
}

/** Foreign rules an admin or another tool put there; they must survive everything we do, in place. */
export async function addForeignRules(host: string): Promise<void> {
  for (const cmd of ['iptables', 'ip6tables']) {
    const src = cmd === 'iptables' ? '192.0.2.0/24' : '2001:db8:99::/64';
    await nsRun(host, cmd, ['-t', 'nat', '-A', 'POSTROUTING', '-s', src, '-j', 'MASQUERADE']);
    await nsRun(host, cmd, ['-t', 'filter', '-A', 'FORWARD', '-s', src, '-j', 'ACCEPT']);
    await nsRun(host, cmd, ['-t', 'filter', '-A', 'INPUT', '-s', src, '-j', 'ACCEPT']);
    await nsRun(host, cmd, ['-t', 'nat', '-A', 'PREROUTING', '-s', src, '-j', 'RETURN']);
    await nsRun(host, cmd, ['-t', 'nat', '-A', 'OUTPUT', '-s', src, '-j', 'RETURN']);
  }
  await nsRun(host, nftBin, ['add', 'table', 'inet', 'admin']);
  await nsRun(host, nftBin, ['add', 'chain', 'inet', 'admin', 'post', '{ type nat hook postrouting priority 50; }']);
  await nsRun(host, nftBin, ['add', 'rule', 'inet', 'admin', 'post', 'ip saddr 192.0.2.0/24 masquerade']);
}

/** Lines that name one of our base chains (declaration or the single jump from a built-in chain). */
const baseChainLine = /\bCTNET-(POSTROUTING|ADMIN|HOSTPORTS|HOSTPORT-MASQ|INPUT)\b/;

/** The ruleset with our (empty) base chains and their jumps removed: "as before the first ADD". */
export function withoutBase(snapshot: string): string {
  return snapshot
    .split('\n')
    .filter((l) => !baseChainLine.test(l))
    .join('\n')
    .replace(/table inet ctnet \{[\s\S]*?\n\}\n?/g, '');
}

/** What of ours is left in `inet ctnet` beyond the base: per-attachment chains and map elements. */
export function nftAttachmentLeftovers(snapshot: string): string[] {
  const table = snapshot.match(/table inet ctnet \{[\s\S]*?\n\}/)?.[0] ?? '';
  const chains = [...table.matchAll(/\n\tchain ((?:masq|dnat|fwd|hp)-[0-9a-f]+) \{/g)].map((m) => `chain ${m[1]}`);
  const elements = [...table.matchAll(/elements = \{([^}]*)\}/g)].map((m) => `elements ${m[1]?.replace(/\s+/g, ' ').trim()}`);
  return [...chains, ...elements];
}
