/**
 * `debug doctor`: host prerequisites for container networking, and leftovers of crashes on ctnet's
 * own networks (the ones in $CTNET_ROOT/networks; foreign networks are never judged):
 *
 *   - dead attachments in the CNI result cache (their netns is gone): fixed by a CNI DEL with the
 *     cached config, which lets the plugins themselves release leases and rules;
 *   - leases whose container is not alive: released under the lease directory's lock;
 *   - host veths on a ctnet bridge that no live attachment owns: deleted;
 *   - firewall rules (ctnet's comment `ctnet <kind> net=… id=…`) of attachments not alive: removed
 *     through the firewall module's GC with the live attachments as the valid list;
 *   - isolation chains that disagree with the network list: rebuilt.
 *
 * "Alive" means: a runner container that is creating or running with its netns present, or a
 * cached attachment whose netns still exists. Nothing else is ever touched by --fix.
 */
import { dirname } from 'node:path';
import { type Executor, run } from '../core/index.js';
import { DiskLeaseStore } from '../ipam/index.js';
import { type AttachmentKey, openFirewall } from '../iptables/index.js';
import { withNetlink } from '../netns/index.js';
import {
  bridgeOf,
  CniRuntime,
  type ContainerView,
  type CtnetPaths,
  cachedContainers,
  isolationDrift,
  leaseDirOf,
  NetworkStore,
  netnsAlive,
  parseNetworkConfig,
  readLeases,
  subnetsOf,
  syncIsolation,
} from '../network/index.js';
import { runnerContainers } from '../runner/index.js';
import { describeFirewall, type RuleLine, type XtablesDump, xtablesDump } from './firewall.js';
import { links, sysctl } from './kernel.js';
import { kindOf } from './report.js';

export type Severity = 'ok' | 'info' | 'warn' | 'problem';

export type Fix =
  | { type: 'cni-del'; network: string; containerId: string; ifname: string }
  | { type: 'lease'; network: string; dataDir: string; ip: string }
  | { type: 'veth'; name: string }
  | { type: 'rules'; network: string; backends: ('iptables' | 'nftables')[] }
  | { type: 'isolation' };

export interface Finding {
  check: string;
  severity: Severity;
  detail: string;
  hint?: string;
  /** Present on leftovers that --fix removes. */
  fix?: Fix;
}

export interface DoctorReport {
  findings: Finding[];
  fixed: { detail: string; error?: string }[];
}

interface Liveness {
  /** containerId\0ifname of live attachments. */
  keys: Set<string>;
  ids: Set<string>;
  hostInterfaces: Set<string>;
}

const keyOf = (containerId: string, ifname: string) => `${containerId}\0${ifname}`;

function isLive(c: ContainerView): boolean {
  if (c.source === 'runner' && c.status !== 'running' && c.status !== 'creating') return false;
  return netnsAlive(c);
}

function liveness(containers: ContainerView[]): Liveness {
  const live: Liveness = { keys: new Set(), ids: new Set(), hostInterfaces: new Set() };
  for (const c of containers.filter(isLive)) {
    live.ids.add(c.id);
    for (const a of c.attachments) {
      live.keys.add(keyOf(c.id, a.ifname));
      for (const i of a.hostInterfaces) live.hostInterfaces.add(i);
    }
  }
  return live;
}

function commentOf(rule: string): string | undefined {
  return /--comment "((?:[^"\\]|\\.)*)"/.exec(rule)?.[1] ?? /comment "((?:[^"\\]|\\.)*)"/.exec(rule)?.[1];
}

async function prerequisites(store: NetworkStore, rules: { v4: XtablesDump; nft: RuleLine[] }): Promise<Finding[]> {
  const out: Finding[] = [];
  const managed = store.managed();
  const hasV6 = managed.some((n) => subnetsOf(n.list).some((s) => s.subnet.includes(':')));

  const fwd4 = await sysctl('net/ipv4/ip_forward');
  out.push(
    fwd4 === '1'
      ? { check: 'ipv4 forwarding', severity: 'ok', detail: 'net.ipv4.ip_forward = 1' }
      : {
          check: 'ipv4 forwarding',
          severity: managed.length ? 'problem' : 'warn',
          detail: `net.ipv4.ip_forward = ${fwd4 ?? '?'}: published ports and outbound traffic of containers will not work`,
          hint: 'sysctl -w net.ipv4.ip_forward=1 (the bridge plugin enables it on ADD)',
        },
  );
  if (hasV6) {
    const fwd6 = await sysctl('net/ipv6/conf/all/forwarding');
    out.push(
      fwd6 === '1'
        ? { check: 'ipv6 forwarding', severity: 'ok', detail: 'net.ipv6.conf.all.forwarding = 1' }
        : {
            check: 'ipv6 forwarding',
            severity: 'problem',
            detail: `net.ipv6.conf.all.forwarding = ${fwd6 ?? '?'}`,
            hint: 'sysctl -w net.ipv6.conf.all.forwarding=1',
          },
    );
  }

  // The iptables variant, and rules hiding in the other one (they don't see each other).
  const version = await run('iptables', ['-V'], { allowFailure: true, timeoutMs: 5000 }).catch(() => undefined);
  if (version?.code !== 0) {
    out.push({
      check: 'iptables',
      severity: 'warn',
      detail: 'iptables is not installed',
      hint: 'install iptables, or use the nftables backend',
    });
  } else {
    const variant = /nf_tables/.test(version.stdout) ? 'nf_tables' : 'legacy';
    const other = variant === 'nf_tables' ? 'iptables-legacy-save' : 'iptables-nft-save';
    const otherSave = await run(other, [], { allowFailure: true, timeoutMs: 5000 }).catch(() => undefined);
    const otherRules = otherSave?.code === 0 ? otherSave.stdout.split('\n').filter((l) => l.startsWith('-A ')).length : 0;
    out.push(
      otherRules > 0
        ? {
            check: 'iptables variant',
            severity: 'warn',
            detail: `iptables is the ${variant} variant, but ${otherRules} rules exist in the other one (${other}): the two do not see each other`,
            hint: 'make every tool on the host use one variant (update-alternatives --config iptables)',
          }
        : { check: 'iptables variant', severity: 'ok', detail: `${version.stdout.trim()}; nothing in the other variant` },
    );
  }

  // Foreign chains that drop or reject forwarded traffic.
  const forwardPolicy = rules.v4.chains.find((c) => c.table === 'filter' && c.name === 'FORWARD')?.policy;
  const foreign = rules.v4.rules.filter(
    (r) =>
      r.table === 'filter' &&
      r.chain === 'FORWARD' &&
      !/-j CTNET-/.test(r.rule) &&
      /-j (DROP|REJECT|[A-Za-z][\w-]*)/.test(r.rule),
  );
  const blockers = foreign.filter((r) => /-j (DROP|REJECT)\b/.test(r.rule) || /(ISOLATION|ufw|DOCKER|reject|drop)/i.test(r.rule));
  if (forwardPolicy === 'DROP') {
    out.push({
      check: 'forward policy',
      severity: 'warn',
      detail: 'filter FORWARD policy is DROP: only traffic some rule accepts is forwarded',
      hint: 'check with `ctnet debug trace <container> <port>` that published ports pass',
    });
  }
  for (const r of blockers) {
    out.push({
      check: 'foreign forward rule',
      severity: 'warn',
      detail: `FORWARD #${r.position}: ${r.rule}`,
      hint: "a rule not made by ctnet may drop container traffic before ctnet's chains see it",
    });
  }
  const nftDrops = rules.nft.filter((r) => /hook forward/.test(r.rule) && /policy drop/.test(r.rule));
  for (const r of nftDrops)
    out.push({
      check: 'foreign nft chain',
      severity: 'warn',
      detail: `nft table ${r.table} chain ${r.chain} drops forwarded traffic by policy`,
    });

  // Bridge netfilter: bridged (same-network) traffic then passes iptables FORWARD too.
  const brNf = await sysctl('net/bridge/bridge-nf-call-iptables');
  if (brNf === '1') {
    out.push({
      check: 'bridge netfilter',
      severity: 'info',
      detail: 'bridge-nf-call-iptables = 1: traffic between containers on one bridge passes iptables FORWARD',
      hint: 'a DROP policy or a foreign rule in FORWARD can then cut traffic inside one network',
    });
  }

  // route_localnet on bridges that have published ports (needed for 127.0.0.1:PORT).
  for (const net of managed) {
    const bridge = bridgeOf(net.list);
    if (!bridge || !net.list.plugins.some((p) => p.type === 'portmap')) continue;
    const v = await sysctl(`net/ipv4/conf/${bridge}/route_localnet`);
    if (v === undefined) continue;
    out.push(
      v === '1'
        ? { check: 'route_localnet', severity: 'ok', detail: `${bridge}: 1 (127.0.0.1:PORT reaches published ports)` }
        : {
            check: 'route_localnet',
            severity: 'info',
            detail: `${bridge}: 0 — 127.0.0.1:PORT does not reach this network's published ports (until a mapping sets it)`,
          },
    );
  }
  return out;
}

export async function diagnose(paths: CtnetPaths): Promise<Finding[]> {
  const store = new NetworkStore(paths);
  const managed = store.managed();
  const managedNames = new Set(managed.map((n) => n.list.name));
  const containers = [...runnerContainers(paths), ...cachedContainers(paths)];
  const live = liveness(containers);
  const [xtables, nftables, hostLinks] = await Promise.all([describeFirewall('iptables'), describeFirewall('nftables'), links()]);
  const [v4, v6] = [xtablesDump(xtables, 4), xtablesDump(xtables, 6)];
  const nft = nftables?.rules ?? [];
  const findings = await prerequisites(store, { v4, nft });

  // Dead attachments in the CNI cache: one DEL each releases their lease and rules through the plugins.
  const cache = new CniRuntime({ invoke: () => Promise.reject(new Error('read only')) }, paths.cniResults, []);
  const dyingByCache = new Set<string>();
  for (const c of cache.cachedAttachments()) {
    if (live.keys.has(keyOf(c.containerId, c.ifName))) continue;
    dyingByCache.add(keyOf(c.containerId, c.ifName));
    findings.push({
      check: 'dead attachment',
      severity: 'problem',
      detail: `${c.containerId}/${c.ifName} on network "${c.networkName}": its netns ${c.netns ?? '(none)'} is gone, but its CNI DEL never ran`,
      hint: 'ctnet debug doctor --fix runs the DEL with the cached config',
      fix: { type: 'cni-del', network: c.networkName, containerId: c.containerId, ifname: c.ifName },
    });
  }

  // Leases of dead containers.
  for (const net of managed) {
    const dir = leaseDirOf(net.list);
    if (!dir) continue;
    for (const lease of readLeases(net)) {
      const key = keyOf(lease.containerId, lease.ifname);
      if (live.keys.has(key) || (!lease.ifname && live.ids.has(lease.containerId)) || dyingByCache.has(key)) continue;
      findings.push({
        check: 'orphan lease',
        severity: 'problem',
        detail: `${lease.ip} on network "${net.list.name}" is leased to ${lease.containerId}/${lease.ifname || '?'}, which is not running`,
        fix: { type: 'lease', network: net.list.name, dataDir: dirname(dir), ip: lease.ip },
      });
    }
  }

  // Host veths on ctnet bridges that no live attachment owns.
  const bridges = new Set(managed.map((n) => bridgeOf(n.list)).filter((b): b is string => !!b));
  const dyingInterfaces = new Set(
    cachedContainers(paths).flatMap((c) =>
      c.attachments.filter((a) => dyingByCache.has(keyOf(c.id, a.ifname))).flatMap((a) => a.hostInterfaces),
    ),
  );
  for (const l of hostLinks) {
    if (kindOf(l) !== 'veth' || !l.master || !bridges.has(l.master)) continue;
    if (live.hostInterfaces.has(l.ifname) || dyingInterfaces.has(l.ifname)) continue;
    findings.push({
      check: 'orphan veth',
      severity: 'problem',
      detail: `${l.ifname} on bridge ${l.master} belongs to no running container`,
      fix: { type: 'veth', name: l.ifname },
    });
  }

  // ctnet firewall rules of attachments that are not alive.
  const staleRuleNetworks = new Map<string, Set<string>>();
  const staleBackends = new Map<string, Set<'iptables' | 'nftables'>>();
  for (const r of [...v4.rules, ...v6.rules, ...nft]) {
    const parsed = r.owner && 'key' in r.owner ? r.owner : undefined;
    if (!parsed || !managedNames.has(parsed.key.network)) continue;
    const key = keyOf(parsed.key.containerId, parsed.key.ifname);
    if (live.keys.has(key) || dyingByCache.has(key)) continue;
    const set = staleRuleNetworks.get(parsed.key.network) ?? new Set();
    set.add(`${parsed.key.containerId}/${parsed.key.ifname} (${parsed.kind})`);
    staleRuleNetworks.set(parsed.key.network, set);
    const backends = staleBackends.get(parsed.key.network) ?? new Set();
    backends.add(r.backend);
    staleBackends.set(parsed.key.network, backends);
  }
  // Rules the reference plugins left (their comments: `name: "net" id: "cid"`); reported, never removed.
  const referenceLeft = new Map<string, RuleLine[]>();
  for (const r of [...v4.rules, ...v6.rules]) {
    const m = /^(?:dnat )?name: "(.+)" id: "(.+)"$/.exec((commentOf(r.rule) ?? '').replaceAll('\\"', '"'));
    if (
      !m ||
      !managedNames.has(m[1] as string) ||
      live.ids.has(m[2] as string) ||
      [...dyingByCache].some((k) => k.startsWith(`${m[2]}\0`))
    )
      continue;
    const key = `${m[1]}\0${m[2]}`;
    referenceLeft.set(key, [...(referenceLeft.get(key) ?? []), r]);
  }
  for (const [key, list] of referenceLeft) {
    const [network, id] = key.split('\0');
    findings.push({
      check: 'foreign stale rules',
      severity: 'warn',
      detail: `network "${network}": ${list.length} rules of the reference plugins for dead container ${id} (chains ${[...new Set(list.map((r) => `${r.table}/${r.chain}`))].join(', ')})`,
      hint: 'the reference bridge leaks its masquerade chain when DEL comes without a netns; delete those rules and chains by hand',
    });
  }
  for (const [network, owners] of staleRuleNetworks) {
    findings.push({
      check: 'stale rules',
      severity: 'problem',
      detail: `network "${network}": rules of dead attachments ${[...owners].join(', ')}`,
      fix: { type: 'rules', network, backends: [...(staleBackends.get(network) ?? [])] },
    });
  }

  // Isolation in the firewall backends against the network list.
  const wanted = store.isolatedNetworks();
  const drift = await isolationDrift(wanted);
  if (drift.length) {
    findings.push({
      check: 'isolation rules',
      severity: 'problem',
      detail: drift.join('; '),
      hint: 'a firewall flush or reboot removed them: ctnet debug doctor --fix restores them',
      fix: { type: 'isolation' },
    });
  } else if (wanted.length) {
    findings.push({ check: 'isolation rules', severity: 'ok', detail: `${wanted.length} networks isolated from each other` });
  }
  return findings;
}

/** Applies the fixes of `findings`, each independently; returns what was done. */
export async function applyFixes(
  findings: Finding[],
  paths: CtnetPaths,
  executor: Executor,
  cniPath: string[],
): Promise<DoctorReport['fixed']> {
  const store = new NetworkStore(paths);
  const done: DoctorReport['fixed'] = [];
  const attempt = async (detail: string, fn: () => Promise<void>) => {
    try {
      await fn();
      done.push({ detail });
    } catch (err) {
      done.push({ detail, error: err instanceof Error ? err.message : String(err) });
    }
  };
  const fixes = findings.flatMap((f) => (f.fix ? [f.fix] : []));
  const runtime = new CniRuntime(executor, paths.cniResults, cniPath);
  for (const fix of fixes) {
    switch (fix.type) {
      case 'cni-del':
        await attempt(`ran CNI DEL for ${fix.containerId}/${fix.ifname} on network "${fix.network}"`, async () => {
          const cached = runtime.readCache(fix.network, fix.containerId, fix.ifname);
          if (!cached) return;
          const raw = Buffer.from(cached.config, 'base64').toString('utf8');
          // The plugins that made the attachment are the ones to undo it.
          const del = cached.cniPath ? new CniRuntime(executor, paths.cniResults, cached.cniPath) : runtime;
          await del.del(
            { list: parseNetworkConfig(raw, 'cache'), file: '', raw },
            { containerId: fix.containerId, ifname: fix.ifname, netns: '', capabilityArgs: cached.capabilityArgs },
          );
        });
        break;
      case 'lease':
        await attempt(`released lease ${fix.ip} on network "${fix.network}"`, () =>
          new DiskLeaseStore().update(fix.dataDir, fix.network, (leases) => leases.release(fix.ip)),
        );
        break;
      case 'veth':
        await attempt(`deleted veth ${fix.name}`, async () => {
          await withNetlink(undefined, (nl) => nl.deleteLink(fix.name));
        });
        break;
      case 'rules':
        await attempt(`removed rules of dead attachments on network "${fix.network}"`, async () => {
          const live = liveness([...runnerContainers(paths), ...cachedContainers(paths)]);
          const valid: AttachmentKey[] = [...live.keys].map((k) => {
            const [containerId = '', ifname = ''] = k.split('\0');
            return { network: fix.network, containerId, ifname };
          });
          for (const backend of fix.backends) {
            const fw = await openFirewall(backend);
            await fw.gcMasquerade(fix.network, valid);
            await fw.gcPortForwards(fix.network, valid);
          }
        });
        break;
      case 'isolation':
        await attempt('restored the isolation between networks', () => syncIsolation(store.isolatedNetworks()));
        break;
    }
  }
  return done;
}
