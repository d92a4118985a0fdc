/**
 * `debug trace`: walks the path a connection to a published port takes, hop by hop, and names
 * the first one that is broken with a hint how to fix it:
 *
 *   mapping → DNAT rule → DNAT target → forwarding → forward filter → bridge up → route →
 *   host veth up → veth on the bridge → container interface up → address → return route → listening
 *
 * (The bridge is checked before the route because a bridge that is down takes its route with it:
 * naming the bridge is the useful answer.) Everything is read, nothing is changed.
 */
import { CtnetError, contains, ErrorCode, formatHostPort, type PortMapping, parseCidrOrHost, parseIp } from '../core/index.js';
import {
  bridgeOf,
  type ContainerAttachment,
  type ContainerView,
  type CtnetPaths,
  NetworkStore,
  netnsPathOf,
  parseNetworkConfig,
} from '../network/index.js';
import { resolveTarget } from '../runner/index.js';
import {
  describeFirewall,
  dnatTarget,
  type RuleLine,
  reachableChains,
  ruleMatchesPort,
  type XtablesDump,
  xtablesDump,
} from './firewall.js';
import { type IpAddrInfo, type IpLink, links, routeGet, routes, sysctl } from './kernel.js';
import { isUp, kindOf } from './report.js';
import { listeningSockets } from './sockets.js';

export type HopStatus = 'ok' | 'broken' | 'skipped';

export interface Hop {
  name: string;
  status: HopStatus;
  detail: string;
  hint?: string;
}

export interface TraceReport {
  container: string;
  port: number;
  protocol: string;
  from: string;
  hops: Hop[];
  /** Index into hops of the first broken one. */
  firstBroken?: number;
}

/**
 * Who connects. A world client given without an address (`implicit`) takes the family of the mapping; a host
 * client given as a loopback address (`--from ::1`) is the host connecting through that address.
 */
export type TraceSource =
  | { kind: 'world'; address: string; implicit?: boolean }
  | { kind: 'host'; address?: string }
  | { kind: 'container'; view: ContainerView };

/** Any address outside the host: stands for "a client on the internet" (documentation ranges). */
export const defaultWorldAddress = '198.51.100.10';
export const defaultWorldAddress6 = '2001:db8:100::10';

export function parsePortSpec(spec: string): { port: number; protocol: string } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(spec);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid port ${JSON.stringify(spec)}: expected PORT[/tcp|udp|sctp]`);
  }
  return { port, protocol: (m[2] ?? 'tcp').toLowerCase() };
}

export function resolveSource(from: string | undefined, paths: CtnetPaths): TraceSource {
  if (!from || from === 'world') return { kind: 'world', address: defaultWorldAddress, implicit: true };
  if (from === 'host') return { kind: 'host' };
  const ip = parseIp(from);
  if (!ip) return { kind: 'container', view: resolveTarget(from, paths) };
  return isLoopback(from) ? { kind: 'host', address: from } : { kind: 'world', address: from };
}

/** A trace's hops as they are checked, in order (also the cross-node trace's: node/trace.ts). */
export class HopList {
  readonly hops: Hop[] = [];
  ok(name: string, detail: string): void {
    this.hops.push({ name, status: 'ok', detail });
  }
  /** Returns false, so a check can end with `return hops.broken(…)`. */
  broken(name: string, detail: string, hint: string): false {
    this.hops.push({ name, status: 'broken', detail, hint });
    return false;
  }
  skip(name: string, detail: string): void {
    this.hops.push({ name, status: 'skipped', detail });
  }
  get failed(): boolean {
    return this.hops.some((h) => h.status === 'broken');
  }
}

function bridgeOfAttachment(att: ContainerAttachment, store: NetworkStore): string | undefined {
  if (att.conflist) {
    try {
      return bridgeOf(parseNetworkConfig(att.conflist, 'attachment'));
    } catch {
      /* fall back to the network's current config */
    }
  }
  try {
    return bridgeOf(store.get(att.network).list);
  } catch {
    return undefined;
  }
}

function dnatRules(dump: XtablesDump, port: number, protocol: string): RuleLine[] {
  return dump.rules.filter(
    (r) =>
      r.table === 'nat' &&
      dnatTarget(r.rule) !== undefined &&
      ruleMatchesPort(r.rule, port) &&
      new RegExp(`-p ${protocol}\\b`).test(r.rule),
  );
}

export async function trace(target: ContainerView, spec: string, source: TraceSource, paths: CtnetPaths): Promise<TraceReport> {
  const store = new NetworkStore(paths);
  const { port, protocol } = parsePortSpec(spec);
  const hops = new HopList();
  let from = fromText(source);
  const report = (): TraceReport => {
    const firstBroken = hops.hops.findIndex((h) => h.status === 'broken');
    return {
      container: target.name ?? target.id,
      port,
      protocol,
      from,
      hops: hops.hops,
      firstBroken: firstBroken < 0 ? undefined : firstBroken,
    };
  };
  const who = target.name ?? target.id;

  // 1. The mapping: which container port and address the host port should lead to.
  const mapping: PortMapping | undefined =
    target.ports.find((p) => p.hostPort === port && p.protocol === protocol) ??
    target.ports.find((p) => p.containerPort === port && p.protocol === protocol);
  if (!mapping) {
    const published = target.ports.map((p) => `${p.hostPort}->${p.containerPort}/${p.protocol}`).join(', ') || 'none';
    hops.broken(
      'mapping',
      `${who} does not publish ${port}/${protocol} (published: ${published})`,
      'publish it with -p HOSTPORT:PORT when starting the container',
    );
    return report();
  }
  const hostPort = mapping.hostPort;
  // A mapping bound to one address answers only there; the path follows the client's address family.
  const boundTo = mapping.hostIP && mapping.hostIP !== '0.0.0.0' && mapping.hostIP !== '::' ? mapping.hostIP : undefined;
  const family = clientFamily(source, mapping.hostIP);
  const client: TraceSource =
    source.kind === 'world' && source.implicit && family === 6 ? { ...source, address: defaultWorldAddress6 } : source;
  from = fromText(client);
  hops.ok('mapping', `host ${formatHostPort(mapping.hostIP ?? '*', hostPort)} -> container ${mapping.containerPort}/${protocol}`);
  const loopbackBound = boundTo !== undefined && isLoopback(boundTo);
  if (loopbackBound && client.kind !== 'host') {
    hops.broken(
      'host address',
      `published on ${boundTo} only: reachable from the host itself, not from ${from}`,
      `publish without an address (-p ${hostPort}:${mapping.containerPort}) or on an address ${from} can reach`,
    );
    return report();
  }
  if (boundTo && ipFamily(boundTo) !== family) {
    hops.broken(
      'host address',
      `published on ${boundTo} only: an IPv${family} client cannot reach it`,
      `connect over IPv${ipFamily(boundTo)} (trace --from an IPv${ipFamily(boundTo)} address), or publish on an IPv${family} address too`,
    );
    return report();
  }
  if (boundTo) hops.ok('host address', `only connections to ${boundTo} are forwarded`);
  else if (client.kind === 'host' && client.address && isLoopback(client.address) && family === 6) {
    // The kernel routes no IPv6 packet from ::1 to another host (there is no route_localnet for IPv6), so the
    // port-forward rules leave [::1] alone and the host's own stack answers: refused unless it listens there.
    hops.broken(
      'host address',
      `[::1]:${hostPort} is not forwarded: IPv6 loopback cannot be DNATed to a container, the host refuses the connection`,
      `connect to 127.0.0.1:${hostPort} or to one of the host's own addresses`,
    );
    return report();
  }

  const att = target.attachments[0];
  const address = att?.addresses.find((a) => ipFamily(a.split('/')[0] as string) === family);
  if (!att || !address) {
    const other = att?.addresses[0];
    hops.broken(
      'attachment',
      att && other
        ? `${who} has no IPv${family} address on network ${att.network} (only ${other}): IPv${family} clients are not forwarded`
        : `${who} has no network attachment with an address`,
      att && other
        ? family === 6
          ? 'connect over IPv4, or run the container on a network created with --ipv6'
          : 'connect over IPv6, or give the network an IPv4 subnet'
        : 'the container is not on a bridge network (host or none mode?)',
    );
    return report();
  }
  const ip = address.split('/')[0] as string;
  const bridge = bridgeOfAttachment(att, store);
  const netns = netnsPathOf(target);

  const [dump, hostLinks, ctrLinks, hostRoute, ctrRoutes, sockets] = await Promise.all([
    describeFirewall('iptables').then((state) => xtablesDump(state, family)),
    links(),
    links(netns),
    routeGet(ip),
    routes(netns),
    listeningSockets(netns),
  ]);

  // 2. DNAT rule present and reachable from where the packet enters nat.
  const entry = client.kind === 'host' ? 'OUTPUT' : 'PREROUTING';
  // The iptables view first; ctnet's nftables backend (table `ctnet`) when iptables has none.
  let candidates = dnatRules(dump, hostPort, protocol);
  const reachable = reachableChains(dump, 'nat', entry);
  let live = candidates.filter((r) => reachable.has(r.chain));
  if (candidates.length === 0) {
    const nft = ((await describeFirewall('nftables'))?.rules ?? []).filter(
      (r) =>
        (r.family === family || r.family === 'inet') &&
        new RegExp(`\\b${protocol} dport ${hostPort}\\b`).test(r.rule) &&
        targetFamily(dnatTarget(r.rule)) === family,
    );
    candidates = nft;
    // nft chains are reached through verdict maps and jumps that this reader does not follow: present = live.
    live = nft;
  }
  if (candidates.length === 0) {
    hops.broken(
      'dnat rule',
      `no ${family === 6 ? 'IPv6 ' : ''}nat rule DNATs ${protocol} port ${hostPort} (${family === 6 ? 'ip6tables-save' : 'iptables-save'} -t nat, nft list ruleset)`,
      'the port-forward rules are gone (a firewall reload or flush?): restart the container, or re-run its CNI ADD',
    );
    return report();
  }
  if (live.length === 0) {
    const chains = [...new Set(candidates.map((r) => r.chain))].join(', ');
    hops.broken(
      'dnat rule',
      `the DNAT rule for port ${hostPort} is in ${chains}, which nat ${entry} never jumps to`,
      `the jump from ${entry} into the port-forward chains is missing: re-run the container's CNI ADD, or check for a flushed ${entry}`,
    );
    return report();
  }
  hops.ok('dnat rule', `nat ${live[0]?.chain} #${live[0]?.position} (${live.reduce((n, r) => n + r.packets, 0)} packets)`);

  // 3. DNAT target: the container's current address and port.
  const want = formatHostPort(ip, mapping.containerPort);
  const targets = [...new Set(live.map((r) => dnatTarget(r.rule) as string))];
  if (targets[0] !== want) {
    hops.broken(
      'dnat target',
      `port ${hostPort} is sent to ${targets.join(', ')}, but ${who} is ${want}`,
      'a stale rule of a dead container wins (first match): `ctnet debug doctor --fix` removes rules of dead attachments',
    );
    return report();
  }
  hops.ok('dnat target', `-> ${want}${targets.length > 1 ? ` (also: ${targets.slice(1).join(', ')})` : ''}`);

  // 4. Forwarding (not needed for the host's own connections: they are routed, not forwarded).
  const bridgeLink = hostLinks.find((l) => l.ifname === bridge);
  if (client.kind === 'host') hops.skip('forwarding', 'the host itself connects: nothing is forwarded');
  else {
    const key = family === 4 ? 'net/ipv4/ip_forward' : 'net/ipv6/conf/all/forwarding';
    const value = await sysctl(key);
    if (value !== '1') {
      hops.broken(
        'forwarding',
        `${key.replaceAll('/', '.')} is ${value ?? 'unreadable'}`,
        `enable it: sysctl -w ${key.replaceAll('/', '.')}=1`,
      );
      return report();
    }
    hops.ok('forwarding', `${key.replaceAll('/', '.')} = 1`);
  }

  // 5. Forward filter: a DROP policy with nothing of ours accepting, or isolation from another network.
  if (client.kind === 'host') hops.skip('forward filter', 'not forwarded');
  else {
    const forward = dump.chains.find((c) => c.table === 'filter' && c.name === 'FORWARD');
    const accepting = dump.rules.some(
      (r) => r.table === 'filter' && (new RegExp(`-o ${bridge}\\b.*-j ACCEPT`).test(r.rule) || /-j CTNET-FORWARD\b/.test(r.rule)),
    );
    const sourceBridge =
      client.kind === 'container' && client.view.attachments[0]
        ? bridgeOfAttachment(client.view.attachments[0], store)
        : undefined;
    const isolated =
      sourceBridge !== undefined &&
      sourceBridge !== bridge &&
      dump.rules.some((r) => r.chain === 'CTNET-ISOLATION-2' && r.rule.includes(`-o ${bridge} `));
    if (forward?.policy === 'DROP' && !accepting) {
      hops.broken(
        'forward filter',
        `filter FORWARD policy is DROP and no rule accepts traffic to ${bridge}`,
        'add an accept rule for the bridge, or set the policy to ACCEPT',
      );
      return report();
    }
    if (isolated) {
      hops.broken(
        'forward filter',
        `${from} is on another network (${sourceBridge}); networks are isolated`,
        `connect through the host's published port from outside, or put both containers on one network`,
      );
      return report();
    }
    hops.ok('forward filter', `FORWARD policy ${forward?.policy ?? 'ACCEPT'}${accepting ? ', accepted for the bridge' : ''}`);
  }

  // 6. The bridge.
  if (!bridgeLink) {
    hops.broken(
      'bridge',
      `bridge ${bridge ?? '(unknown)'} does not exist`,
      "re-run the container's CNI ADD: the bridge plugin creates it",
    );
    return report();
  }
  if (!isUp(bridgeLink)) {
    hops.broken('bridge', `bridge ${bridge} is down`, `ip link set ${bridge} up`);
    return report();
  }
  hops.ok('bridge', `${bridge} up`);

  // 7. The route to the container goes over the bridge.
  if (hostRoute?.dev !== bridge) {
    hops.broken(
      'route',
      hostRoute ? `${ip} is routed via ${hostRoute.dev ?? hostRoute.gateway ?? '?'}, not ${bridge}` : `no route to ${ip}`,
      `the bridge has lost its address or another route is more specific: ip route get ${ip}`,
    );
    return report();
  }
  hops.ok('route', `${ip} via dev ${bridge}`);

  // 8-9. The host end of the container's veth: up and on the bridge.
  const ctrIface = ctrLinks.find((l) => l.ifname === att.ifname);
  const hostVeth = findHostVeth(ctrIface, hostLinks, att.hostInterfaces);
  if (!hostVeth) {
    hops.broken(
      'host veth',
      `the host end of ${who}'s ${att.ifname} does not exist`,
      'the veth pair was deleted: restart the container',
    );
    return report();
  }
  if (!isUp(hostVeth)) {
    hops.broken('host veth', `${hostVeth.ifname} is down`, `ip link set ${hostVeth.ifname} up`);
    return report();
  }
  hops.ok('host veth', `${hostVeth.ifname} up`);
  if (hostVeth.master !== bridge) {
    hops.broken(
      'veth on bridge',
      `${hostVeth.ifname} is ${hostVeth.master ? `enslaved to ${hostVeth.master}` : 'not enslaved to any bridge'}, not ${bridge}`,
      `ip link set ${hostVeth.ifname} master ${bridge}`,
    );
    return report();
  }
  hops.ok('veth on bridge', `${hostVeth.ifname} master ${bridge}`);

  // 10-11. Inside the container: the interface and its address.
  if (!ctrIface || !isUp(ctrIface)) {
    hops.broken(
      'container interface',
      `${att.ifname} in ${who} is ${ctrIface ? 'down' : 'missing'}`,
      `ctnet debug exec ${who} -- ip link set ${att.ifname} up`,
    );
    return report();
  }
  hops.ok('container interface', `${att.ifname} up`);
  const onIface = (ctrIface.addr_info ?? []).find((a) => a.local === ip);
  if (!onIface) {
    hops.broken(
      'address',
      `${ip} is not on ${att.ifname} in ${who}`,
      `ctnet debug exec ${who} -- ip addr add ${address} dev ${att.ifname}${family === 6 ? ' nodad' : ''}`,
    );
    return report();
  }
  const unusable = addressUnusable(onIface);
  if (unusable) {
    hops.broken(
      'address',
      `${ip} on ${att.ifname} in ${who} is ${unusable}`,
      unusable === 'tentative'
        ? 'duplicate address detection has not finished yet: wait a second, then trace again'
        : `another host on the bridge answers for ${ip}: find it with ip -6 neigh show ${ip} on the host`,
    );
    return report();
  }
  hops.ok('address', `${address} on ${att.ifname}`);

  // 12. The way back: replies must find a route to the client.
  if (client.kind === 'world') {
    const clientIp = parseIp(client.address);
    const back = ctrRoutes.find((r) => {
      const dst = parseCidrOrHost(r.dst);
      return dst !== undefined && clientIp !== undefined && contains(dst, clientIp);
    });
    if (!back) {
      hops.broken(
        'return route',
        `${who} has no route to ${client.address} (no ${family === 6 ? 'IPv6 ' : ''}default route)`,
        `ctnet debug exec ${who} -- ip ${family === 6 ? '-6 ' : ''}route add default via <gateway>`,
      );
      return report();
    }
    // The gateway is the bridge's own address: one still in duplicate address detection answers no neighbour
    // solicitation, so replies to the client have nowhere to go.
    const gateway = back.gateway ? bridgeLink.addr_info?.find((a) => a.local === back.gateway) : undefined;
    const gatewayState = gateway && addressUnusable(gateway);
    if (gatewayState) {
      hops.broken(
        'return route',
        `the gateway ${back.gateway} on ${bridge} is ${gatewayState}`,
        gatewayState === 'tentative'
          ? 'duplicate address detection has not finished yet: wait a second, then trace again'
          : `another host on the bridge answers for ${back.gateway}: find it with ip -6 neigh show ${back.gateway}`,
      );
      return report();
    }
    hops.ok('return route', `${back.dst}${back.gateway ? ` via ${back.gateway}` : ''}`);
  } else hops.skip('return route', 'the client is on the bridge side (replies are masqueraded back)');

  // 13. Something listens on the container port.
  const proto = protocol === 'udp' ? 'udp' : 'tcp';
  const onPort = sockets.filter((s) => s.protocol === proto && s.port === mapping.containerPort);
  // An IPv6 socket on :: takes IPv4 too (unless it is v6only, which /proc does not show); an IPv4 one never takes IPv6.
  const reachableSocket = onPort.find((s) => (s.address === '0.0.0.0' && family === 4) || s.address === '::' || s.address === ip);
  if (!reachableSocket) {
    const loopbackOnly = onPort.find((s) => s.address.startsWith('127.') || s.address === '0:0:0:0:0:0:0:1');
    const otherFamily = onPort.find((s) => s.address === '0.0.0.0');
    hops.broken(
      'listening',
      loopbackOnly
        ? `the server in ${who} listens on ${formatHostPort(loopbackOnly.address, mapping.containerPort)} only`
        : otherFamily
          ? `the server in ${who} listens on IPv4 only (0.0.0.0:${mapping.containerPort}), not on ${ip}`
          : `nothing in ${who} listens on ${proto} port ${mapping.containerPort}`,
      loopbackOnly
        ? `make the server bind ${family === 6 ? '::' : '0.0.0.0'} (or the container address)`
        : otherFamily
          ? 'make the server bind :: (both families), or connect over IPv4'
          : 'start the server, or check its port (ctnet debug exec … -- ss -lntu)',
    );
    return report();
  }
  hops.ok('listening', `${proto} ${formatHostPort(reachableSocket.address, reachableSocket.port)}`);
  return report();
}

export async function traceTarget(ref: string, spec: string, from: string | undefined, paths: CtnetPaths): Promise<TraceReport> {
  return trace(resolveTarget(ref, paths), spec, resolveSource(from, paths), paths);
}

function ipFamily(ip: string): 4 | 6 {
  return parseIp(ip)?.family ?? 4;
}

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

function targetFamily(target: string | undefined): 4 | 6 | undefined {
  return target === undefined ? undefined : target.startsWith('[') ? 6 : 4;
}

/**
 * The path's family: a world client's own; a host client's by the loopback address it connects through, else
 * by the address the port is published on (IPv4 for a wildcard); a container's by the published address too.
 */
function clientFamily(source: TraceSource, hostIP: string | undefined): 4 | 6 {
  if (source.kind === 'world' && !source.implicit) return ipFamily(source.address);
  if (source.kind === 'host' && source.address) return ipFamily(source.address);
  return hostIP && hostIP !== '0.0.0.0' ? ipFamily(hostIP) : 4;
}

function fromText(source: TraceSource): string {
  if (source.kind === 'world') return source.address;
  if (source.kind === 'host') return source.address ? `host (${source.address})` : 'host';
  return source.view.name ?? source.view.id;
}

/** Why an address cannot be used yet or at all (IPv6 duplicate address detection), or undefined. */
function addressUnusable(a: IpAddrInfo): 'tentative' | 'a duplicate (DAD failed)' | undefined {
  if (a.dadfailed) return 'a duplicate (DAD failed)';
  if (a.tentative) return 'tentative';
  return undefined;
}

function findHostVeth(ctr: IpLink | undefined, host: IpLink[], resultNames: string[]): IpLink | undefined {
  if (ctr?.link_index !== undefined) {
    const peer = host.find((h) => h.ifindex === ctr.link_index && kindOf(h) === 'veth');
    if (peer) return peer;
  }
  return host.find((h) => resultNames.includes(h.ifname) && kindOf(h) === 'veth');
}
