/**
 * Bridge ADD. IPAM runs first, so the failures that depend on input (an exhausted range, a
 * requested address already taken) happen before the host is touched; every later step pushes
 * its undo, and a failure unwinds them all: a failed ADD leaves no lease, link or rule behind.
 */
import {
  type CniInterface,
  type CniIpConfig,
  type CniResult,
  type CniRoute,
  CtnetError,
  delegate,
  ErrorCode,
  latestVersion,
  type PluginContext,
  wrapError,
} from '../../core/index.js';
import { openFirewall } from '../../iptables/index.js';
import { type Netlink, randomVethName, withNetlink, writeSysctl } from '../../netns/index.js';
import { applyGatewayPolicy, canonical, familyOf, prefixLength } from './addressing.js';
import { type BridgeNetConf, type BridgeSettings, bridgeSettings, requestedMac } from './config.js';
import { UndoStack } from './undo.js';

/** Host-side veth names: "veth" + 8 hex characters (on-host contract shared with the reference plugin). */
const vethCreateAttempts = 10;

/** Writes a sysctl that may be absent (IPv6 disabled, interface renamed): absence is not an error. */
function trySysctl(nsPath: string | undefined, key: string, value: string): void {
  try {
    writeSysctl(nsPath, key, value);
  } catch {
    /* absent in this namespace: nothing to configure */
  }
}

interface HostSide {
  bridgeMac: string | undefined;
  hostVeth: string;
  hostMac: string | undefined;
}

async function ensureBridge(
  nl: Netlink,
  s: BridgeSettings,
  undo: UndoStack,
): Promise<{ index: number; mac: string | undefined }> {
  const before = await nl.getLink(s.bridge);
  if (before && before.kind !== 'bridge') {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `failed to use bridge "${s.bridge}": a ${before.kind ?? 'non-bridge'} link of that name exists`,
    );
  }
  const vlanFiltering = s.vlan > 0 || s.trunkVlans.length > 0;
  const br = await nl.ensureBridge(s.bridge, { mtu: s.mtu, vlanFiltering });
  if (!before) {
    // Its own socket: the undo may run after this one's withNetlink scope has closed it.
    undo.push(`delete bridge ${s.bridge}`, () =>
      withNetlink(undefined, async (own) => {
        // Only if nothing else was attached to it meanwhile (a concurrent ADD may have found it).
        const ports = (await own.listLinks()).filter((l) => l.master === br.index);
        if (ports.length === 0) await own.deleteLink(s.bridge);
      }),
    );
    // Pin the MAC: otherwise the bridge takes the lowest port MAC and changes as ports come and go.
    if (br.mac) await nl.setMac(s.bridge, br.mac);
    trySysctl(undefined, `net/ipv6/conf/${s.bridge}/accept_ra`, '0');
  }
  if (s.promiscMode) await nl.setPromisc(s.bridge, true);
  if (!br.up) await nl.setUp(s.bridge);
  return { index: br.index, mac: br.mac };
}

async function createVeth(nl: Netlink, s: BridgeSettings, ifname: string, netns: string, undo: UndoStack): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const hostVeth = randomVethName();
    try {
      await nl.createVeth(hostVeth, ifname, { mtu: s.mtu, peerNetnsPath: netns });
      // Its own socket: the undo may run after this one's withNetlink scope has closed it.
      undo.push(`delete veth ${hostVeth}`, () => withNetlink(undefined, (own) => own.deleteLink(hostVeth)));
      return hostVeth;
    } catch (err) {
      // A clash of the random host name: try another; a clash of the container name is a real error.
      const hostNameTaken = err instanceof CtnetError && err.code === ErrorCode.exists && (await nl.getLink(hostVeth));
      if (!hostNameTaken || attempt >= vethCreateAttempts) throw wrapError(`create veth pair for ${ifname}`, err);
    }
  }
}

async function setupPort(nl: Netlink, s: BridgeSettings, hostVeth: string): Promise<void> {
  await nl.setMaster(hostVeth, s.bridge);
  if (s.hairpinMode || s.portIsolation) await nl.setBridgePort(hostVeth, { hairpin: s.hairpinMode, isolated: s.portIsolation });
  if (s.vlan > 0 || s.trunkVlans.length > 0) {
    if (!s.preserveDefaultVlan) await nl.bridgeVlanDel(hostVeth, 1);
    if (s.vlan > 0) await nl.bridgeVlanAdd(hostVeth, s.vlan, { pvid: true, untagged: true });
    for (const vid of s.trunkVlans) await nl.bridgeVlanAdd(hostVeth, vid, {});
  }
  trySysctl(undefined, `net/ipv6/conf/${hostVeth}/accept_ra`, '0');
  await nl.setUp(hostVeth);
}

async function setupHostSide(s: BridgeSettings, ifname: string, netns: string, undo: UndoStack): Promise<HostSide> {
  return withNetlink(undefined, async (nl) => {
    const br = await ensureBridge(nl, s, undo);
    const hostVeth = await createVeth(nl, s, ifname, netns, undo);
    await setupPort(nl, s, hostVeth);
    const link = await nl.getLink(hostVeth);
    return { bridgeMac: br.mac, hostVeth, hostMac: link?.mac };
  });
}

/** Adds `gateway/prefix` to the bridge, following the reference's rule for conflicting addresses. */
async function ensureGatewayAddress(nl: Netlink, s: BridgeSettings, ip: CniIpConfig): Promise<void> {
  if (!ip.gateway) return;
  const family = familyOf(ip.address);
  const wanted = `${ip.gateway}/${prefixLength(ip.address)}`;
  const current = await nl.listAddresses(s.bridge, family);
  for (const a of current) {
    if (a.scope !== 0) continue;
    if (canonical(a.address) === canonical(ip.gateway) && a.prefixLen === prefixLength(ip.address)) return;
    // IPv4: one gateway address per bridge. IPv6: several, unless their prefixes overlap.
    const conflicts = family === 4 || a.prefixLen === prefixLength(ip.address);
    if (!conflicts) continue;
    if (!s.forceAddress) {
      throw new CtnetError(
        ErrorCode.invalidConfig,
        `failed to set gateway on bridge "${s.bridge}": it already has ${a.cidr}, not ${wanted}`,
        {
          hint: 'set "forceAddress": true to replace it, or give this network its own bridge',
        },
      );
    }
    await nl.delAddress(s.bridge, a.cidr);
  }
  await nl.addAddress(s.bridge, wanted, { ignoreExists: true });
}

async function setupGateway(s: BridgeSettings, ips: CniIpConfig[]): Promise<void> {
  if (!s.isGateway) return;
  await withNetlink(undefined, async (nl) => {
    for (const ip of ips) await ensureGatewayAddress(nl, s, ip);
  });
  // Forwarding is global and never reset (reference behaviour: other networks may rely on it).
  if (ips.some((ip) => familyOf(ip.address) === 4)) writeSysctl(undefined, 'net/ipv4/ip_forward', '1');
  if (ips.some((ip) => familyOf(ip.address) === 6)) writeSysctl(undefined, 'net/ipv6/conf/all/forwarding', '1');
}

async function waitForDad(nl: Netlink, ifname: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v6 = (await nl.listAddresses(ifname)).filter((a) => a.family === 6 && a.scope === 0);
    const failed = v6.find((a) => a.dadFailed);
    if (failed)
      throw new CtnetError(
        ErrorCode.internal,
        `failed to configure ${ifname}: duplicate address detection failed for ${failed.cidr}`,
      );
    if (!v6.some((a) => a.tentative)) return;
    if (Date.now() > deadline)
      throw new CtnetError(ErrorCode.tryAgainLater, `failed to configure ${ifname}: IPv6 addresses still tentative after 5 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function setupContainerSide(
  s: BridgeSettings,
  ifname: string,
  netns: string,
  ips: CniIpConfig[],
  routes: CniRoute[],
  mac: string | undefined,
): Promise<string | undefined> {
  const hasV6 = ips.some((ip) => familyOf(ip.address) === 6);
  trySysctl(netns, `net/ipv6/conf/${ifname}/accept_dad`, s.enableDad ? '1' : '0');
  if (s.enableDad) trySysctl(netns, `net/ipv6/conf/${ifname}/enhanced_dad`, '1');
  trySysctl(netns, `net/ipv4/conf/${ifname}/arp_notify`, '1');
  if (hasV6) {
    writeSysctl(netns, 'net/ipv6/conf/lo/disable_ipv6', '0');
    writeSysctl(netns, `net/ipv6/conf/${ifname}/disable_ipv6`, '0');
    trySysctl(netns, `net/ipv6/conf/${ifname}/keep_addr_on_down`, '1');
  }
  return withNetlink(netns, async (nl) => {
    if (mac) await nl.setMac(ifname, mac);
    if (s.mtu) await nl.setMtu(ifname, s.mtu);
    for (const ip of ips) await nl.addAddress(ifname, ip.address);
    if (!s.disableContainerInterface) await nl.setUp(ifname);
    if (hasV6 && s.enableDad) await waitForDad(nl, ifname);
    for (const r of routes) {
      const family = familyOf(r.dst);
      const gw = r.gw ?? ips.find((ip) => familyOf(ip.address) === family && ip.gateway)?.gateway;
      await nl.addRoute({ ...r, gw, dev: ifname });
    }
    return (await nl.getLink(ifname))?.mac;
  });
}

export async function addBridge(ctx: PluginContext<BridgeNetConf>): Promise<CniResult> {
  const { env, conf } = ctx;
  const s = bridgeSettings(conf);
  const mac = requestedMac(conf, env);
  const taken = await withNetlink(env.netns, (nl) => nl.getLink(env.ifname));
  if (taken) {
    throw new CtnetError(ErrorCode.exists, `failed to add interface "${env.ifname}": it already exists in ${env.netns}`);
  }
  const undo = new UndoStack();
  try {
    let ipam: CniResult | undefined;
    if (s.ipamType) {
      const ipamType = s.ipamType;
      ipam = await delegate(ctx.executor, ipamType, 'ADD', ctx.vars, ctx.stdin);
      undo.push(`release addresses through ${ipamType}`, () => delegate(ctx.executor, ipamType, 'DEL', ctx.vars, ctx.stdin));
      if (!ipam?.ips?.length) throw new CtnetError(ErrorCode.internal, `IPAM plugin ${ipamType} returned no addresses`);
    }
    const { ips, routes } = applyGatewayPolicy(ipam?.ips ?? [], ipam?.routes ?? [], s);
    // Masquerade needs only the addresses: it runs while the links are made (it waits on iptables processes).
    let masquerade: Promise<void> | undefined;
    if (s.ipMasq && ips.length) {
      const key = { network: s.network, containerId: env.containerId, ifname: env.ifname };
      const addresses = ips.map((ip) => ip.address);
      masquerade = openFirewall(s.ipMasqBackend).then((firewall) => {
        // Teardown is idempotent, so it is registered before setup can have made anything.
        undo.push('remove masquerade rules', () => firewall.teardownMasquerade(key, addresses, s.bridge));
        return firewall.setupMasquerade({ ...key, addresses, hostInterface: s.bridge });
      });
    }
    let host: Awaited<ReturnType<typeof setupHostSide>>;
    let containerMac: string | undefined;
    try {
      host = await setupHostSide(s, env.ifname, env.netns, undo);
      containerMac = await setupContainerSide(s, env.ifname, env.netns, ips, routes, mac);
      await setupGateway(s, ips);
    } catch (err) {
      // Unwinding must not race a setup still in flight.
      await masquerade?.catch(() => undefined);
      throw err;
    }
    await masquerade;
    const interfaces: CniInterface[] = [
      { name: s.bridge, ...(host.bridgeMac && { mac: host.bridgeMac }) },
      { name: host.hostVeth, ...(host.hostMac && { mac: host.hostMac }) },
      { name: env.ifname, ...(containerMac && { mac: containerMac }), ...(s.mtu && { mtu: s.mtu }), sandbox: env.netns },
    ];
    const dns = s.dns && Object.keys(s.dns).length ? s.dns : ipam?.dns;
    return {
      cniVersion: latestVersion,
      interfaces,
      ips: ips.map((ip) => ({ ...ip, interface: 2 })),
      routes,
      ...(dns && { dns }),
    };
  } catch (err) {
    await undo.unwind();
    throw err;
  }
}
