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
  familyOf,
  hasErrno,
  latestVersion,
  type PluginContext,
  UndoStack,
  wrapError,
} from '../../core/index.js';
import { openFirewall } from '../../iptables/index.js';
import {
  ensureSysctl,
  type LinkChange,
  type LinkInfo,
  type LinkRef,
  type Netlink,
  randomVethName,
  type SysctlSetting,
  withNetlink,
  writeSysctls,
} from '../../netns/index.js';
import { applyGatewayPolicy, canonical, prefixLength } from './addressing.js';
import { type BridgeNetConf, type BridgeSettings, bridgeSettings, requestedMac } from './config.js';

/** Host-side veth names: "veth" + 8 hex characters (on-host contract shared with the reference plugin). */
const vethCreateAttempts = 10;

/** A sysctl that may be absent (IPv6 disabled, interface renamed) or not writable here: nothing to configure then. */
function trySysctl(nsPath: string | undefined, key: string, value: string): void {
  writeSysctls(nsPath, [{ key, value, bestEffort: true }]);
}

interface HostSide {
  bridgeIndex: number;
  bridgeMac: string | undefined;
  hostVeth: string;
  hostMac: string | undefined;
  /** The container end's index in its namespace, when the kernel said (it echoes the new veth). */
  peerIndex: number | undefined;
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
  // The common case, a bridge that is there as configured, needs no second look.
  const br =
    before && (!vlanFiltering || before.vlanFiltering) ? before : await nl.ensureBridge(s.bridge, { mtu: s.mtu, vlanFiltering });
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
    if (br.mac) await nl.updateLink(s.bridge, { mac: br.mac });
    trySysctl(undefined, `net/ipv6/conf/${s.bridge}/accept_ra`, '0');
  }
  if (s.promiscMode && !br.promisc) await nl.updateLink(s.bridge, { promisc: true });
  if (!br.up) await nl.updateLink(br.index, { up: true });
  return { index: br.index, mac: br.mac };
}

/** The host end, created as a port of the bridge; what the kernel echoed of it, if it did. */
async function createVeth(
  nl: Netlink,
  s: BridgeSettings,
  ifname: string,
  netns: string,
  bridgeIndex: number,
  undo: UndoStack,
): Promise<{ hostVeth: string; link: LinkInfo | undefined }> {
  for (let attempt = 1; ; attempt++) {
    const hostVeth = randomVethName();
    try {
      const link = await nl.createVeth(hostVeth, ifname, { mtu: s.mtu, peerNetnsPath: netns, master: bridgeIndex });
      // Its own socket: the undo may run after this one's withNetlink scope has closed it.
      undo.push(`delete veth ${hostVeth}`, () => withNetlink(undefined, (own) => own.deleteLink(hostVeth)));
      return { hostVeth, link };
    } catch (err) {
      // A clash of the random host name: try another; a clash of the container name is a real error.
      const hostNameTaken = err instanceof CtnetError && err.code === ErrorCode.exists && (await nl.getLink(hostVeth));
      if (!hostNameTaken || attempt >= vethCreateAttempts) throw wrapError(`create veth pair for ${ifname}`, err);
    }
  }
}

/**
 * The port's settings, then up, in one request. The host end gets no IPv6 link-local address: a bridge port's
 * own IPv6 is never used (the bridge takes its frames), and each one adds routes every link change of the host
 * walks, plus DAD and MLD traffic. Its peer is down here, so nothing is configured before the request ends.
 */
async function setupPort(nl: Netlink, s: BridgeSettings, hostVeth: string): Promise<void> {
  if (s.vlan > 0 || s.trunkVlans.length > 0) {
    if (!s.preserveDefaultVlan) await nl.bridgeVlanDel(hostVeth, 1);
    if (s.vlan > 0) await nl.bridgeVlanAdd(hostVeth, s.vlan, { pvid: true, untagged: true });
    for (const vid of s.trunkVlans) await nl.bridgeVlanAdd(hostVeth, vid, {});
  }
  trySysctl(undefined, `net/ipv6/conf/${hostVeth}/accept_ra`, '0');
  const bridgePort = s.hairpinMode || s.portIsolation ? { hairpin: s.hairpinMode, isolated: s.portIsolation } : undefined;
  try {
    await nl.updateLink(hostVeth, { bridgePort, ipv6AddrGenMode: 'none', up: true });
  } catch (err) {
    // A kernel without IPv6 refuses the whole request for its IPv6 part.
    if (!hasErrno(err, 'EAFNOSUPPORT')) throw err;
    await nl.updateLink(hostVeth, { bridgePort, up: true });
  }
}

async function setupHostSide(nl: Netlink, s: BridgeSettings, ifname: string, netns: string, undo: UndoStack): Promise<HostSide> {
  const br = await ensureBridge(nl, s, undo);
  const { hostVeth, link } = await createVeth(nl, s, ifname, netns, br.index, undo);
  await setupPort(nl, s, hostVeth);
  // The echo names the host end's MAC; a kernel that does not echo is asked.
  const hostMac = link ? link.mac : (await nl.getLink(hostVeth))?.mac;
  return { bridgeIndex: br.index, bridgeMac: br.mac, hostVeth, hostMac, peerIndex: link?.peerIndex };
}

/**
 * Adds `gateway/prefix` to the bridge, following the reference's rule for conflicting addresses. The add comes
 * first: when the bridge has it already (every ADD but a network's first), the kernel says so, and no dump of
 * the host's addresses (which grows with its links) is needed.
 */
async function ensureGatewayAddress(nl: Netlink, s: BridgeSettings, bridgeIndex: number, ip: CniIpConfig): Promise<void> {
  if (!ip.gateway) return;
  const family = familyOf(ip.address);
  const wanted = `${ip.gateway}/${prefixLength(ip.address)}`;
  // IPv6 without duplicate address detection: the bridge is ours, nothing else can hold its gateway address,
  // and a tentative gateway answers no neighbour solicitation, so the network's first container would have no
  // IPv6 path for the 1-2 s DAD takes.
  const noDad = family === 6;
  if (!(await nl.addAddress(bridgeIndex, wanted, { ignoreExists: true, noDad }))) return;
  // IPv4: one gateway address per bridge. IPv6: several, unless their prefixes overlap.
  const conflicts = (await nl.listAddresses(s.bridge, family)).filter(
    (a) =>
      a.scope === 0 &&
      !(canonical(a.address) === canonical(ip.gateway ?? '') && a.prefixLen === prefixLength(ip.address)) &&
      (family === 4 || a.prefixLen === prefixLength(ip.address)),
  );
  const first = conflicts[0];
  if (!first) return;
  // Ours comes off again before the rule applies: with forceAddress, deleting an IPv4 primary address
  // would take ours with it if ours had become its secondary.
  await nl.delAddress(s.bridge, wanted);
  if (!s.forceAddress) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `failed to set gateway on bridge "${s.bridge}": it already has ${first.cidr}, not ${wanted}`,
      {
        hint: 'set "forceAddress": true to replace it, or give this network its own bridge',
      },
    );
  }
  for (const a of conflicts) await nl.delAddress(s.bridge, a.cidr);
  await nl.addAddress(bridgeIndex, wanted, { ignoreExists: true, noDad });
}

async function setupGateway(nl: Netlink, s: BridgeSettings, bridgeIndex: number, ips: CniIpConfig[]): Promise<void> {
  if (!s.isGateway) return;
  for (const ip of ips) await ensureGatewayAddress(nl, s, bridgeIndex, ip);
  // Forwarding is global and never reset (reference behaviour: other networks may rely on it). Read first:
  // writing net.ipv6.conf.all.forwarding walks every route of the host even when the value stays.
  if (ips.some((ip) => familyOf(ip.address) === 4)) ensureSysctl(undefined, 'net/ipv4/ip_forward', '1');
  if (ips.some((ip) => familyOf(ip.address) === 6)) ensureSysctl(undefined, 'net/ipv6/conf/all/forwarding', '1');
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
  ctr: Netlink,
  s: BridgeSettings,
  ifname: string,
  eth: LinkRef,
  netns: string,
  ips: CniIpConfig[],
  routes: CniRoute[],
  mac: string | undefined,
): Promise<string | undefined> {
  const hasV6 = ips.some((ip) => familyOf(ip.address) === 6);
  // Addresses and routes come from IPAM: a router advertisement forged by another container on the bridge
  // must not add a rogue address or default route, on an IPv4-only attachment either (without a link-local
  // address of its own the interface still takes one). One switch and one lookup of /proc/sys/net/ipv6 for
  // all of them (see netns/sysctl.ts).
  const v6: SysctlSetting[] = [{ key: `net/ipv6/conf/${ifname}/accept_ra`, value: '0', bestEffort: true }];
  if (hasV6) {
    v6.push(
      { key: `net/ipv6/conf/${ifname}/accept_dad`, value: s.enableDad ? '1' : '0', bestEffort: true },
      { key: 'net/ipv6/conf/lo/disable_ipv6', value: '0' },
      { key: `net/ipv6/conf/${ifname}/disable_ipv6`, value: '0' },
      { key: `net/ipv6/conf/${ifname}/keep_addr_on_down`, value: '1', bestEffort: true },
    );
    if (s.enableDad) v6.push({ key: `net/ipv6/conf/${ifname}/enhanced_dad`, value: '1', bestEffort: true });
  }
  writeSysctls(netns, v6);
  // arp_notify through netlink, not /proc/sys/net/ipv4: that lookup costs as much as the IPv6 one in a new
  // namespace. Its own request before up: the kernel applies it after up in a combined one, and the
  // announcement is sent at up.
  // An IPv4-only attachment gets no IPv6 link-local address (as Docker disables IPv6 on the interfaces of
  // IPv4-only networks): no DAD, router solicitation or MLD report at up, each a multicast the bridge floods to
  // every other container.
  const link: LinkChange = { ...(mac && { mac }), ...(s.mtu && { mtu: s.mtu }) };
  const announce: LinkChange = { ipv4Conf: { arp_notify: 1 } };
  const noLinkLocal: LinkChange = hasV6 ? {} : { ipv6AddrGenMode: 'none' };
  try {
    await ctr.updateLink(eth, { ...link, ...announce, ...noLinkLocal });
  } catch (err) {
    if (!hasErrno(err, 'EAFNOSUPPORT')) throw err;
    // IPv4 or IPv6 is off on that link: apply each part it can take (the sysctls were best effort too).
    if (Object.keys(link).length) await ctr.updateLink(eth, link);
    for (const change of [announce, noLinkLocal].filter((c) => Object.keys(c).length)) {
      await ctr.updateLink(eth, change).catch((e: unknown) => {
        if (!hasErrno(e, 'EAFNOSUPPORT')) throw e;
      });
    }
  }
  const containerMac = (await ctr.getLink(ifname))?.mac;
  for (const ip of ips) await ctr.addAddress(eth, ip.address);
  if (!s.disableContainerInterface) await ctr.updateLink(eth, { up: true });
  if (hasV6 && s.enableDad) await waitForDad(ctr, ifname);
  for (const r of routes) {
    const family = familyOf(r.dst);
    const gw = r.gw ?? ips.find((ip) => familyOf(ip.address) === family && ip.gateway)?.gateway;
    await ctr.addRoute({ ...r, gw, dev: eth });
  }
  return containerMac;
}

export async function addBridge(ctx: PluginContext<BridgeNetConf>): Promise<CniResult> {
  const { env, conf } = ctx;
  const s = bridgeSettings(conf);
  const mac = requestedMac(conf, env);
  // One socket in the container's namespace for the whole ADD, and one in the host's while links are made.
  return withNetlink(env.netns, async (ctr) => {
    if (await ctr.getLink(env.ifname)) {
      throw new CtnetError(ErrorCode.exists, `failed to add interface "${env.ifname}": it already exists in ${env.netns}`);
    }
    return addWithUndo(ctx, s, mac, ctr);
  });
}

async function addWithUndo(
  ctx: PluginContext<BridgeNetConf>,
  s: BridgeSettings,
  mac: string | undefined,
  ctr: Netlink,
): Promise<CniResult> {
  const { env } = ctx;
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
    let host: HostSide;
    let containerMac: string | undefined;
    try {
      ({ host, containerMac } = await withNetlink(undefined, async (nl) => {
        const host = await setupHostSide(nl, s, env.ifname, env.netns, undo);
        const eth = host.peerIndex ?? env.ifname;
        const containerMac = await setupContainerSide(ctr, s, env.ifname, eth, env.netns, ips, routes, mac);
        await setupGateway(nl, s, host.bridgeIndex, ips);
        return { host, containerMac };
      }));
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
