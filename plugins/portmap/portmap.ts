/**
 * The portmap plugin (cni-spec §B3), chained after bridge: publishes container ports on the host.
 *
 * ADD: claim the host ports (conflicts fail with code 101), install the forwards in one firewall batch per family,
 * turn on route_localnet toward the container when 127.0.0.1 can reach a mapping, flush UDP conntrack for the host
 * ports. DEL: remove the attachment's forwards (no mappings or prevResult needed), release its claims, flush UDP
 * conntrack. No mappings anywhere: ADD and DEL do nothing (cni-user-issues #6).
 */
import {
  type CniPlugin,
  type CniResult,
  CtnetError,
  ErrorCode,
  ErrorCollector,
  formatHostPort,
  type GcContext,
  type PluginContext,
  parseIp,
  UndoStack,
} from '../../core/index.js';
import {
  type AttachmentKey,
  flushUdpConntrack,
  type KnownForwards,
  openFirewall,
  type PortForwardSpec,
  type PortMapping,
  parseCidr,
} from '../../iptables/index.js';
import { type PortmapNetConf, type PortmapSettings, portmapSettings } from './config.js';
import { enableRouteLocalnet } from './localnet.js';
import { type PortClaim, ReservationStore } from './reservations.js';
import { portmapConfig } from './schema.js';

function attachment(ctx: PluginContext, s: PortmapSettings): AttachmentKey {
  return { network: s.network, containerId: ctx.env.containerId, ifname: ctx.env.ifname };
}

function claimsOf(mappings: PortMapping[]): PortClaim[] {
  return mappings.map((m) => ({ protocol: m.protocol, hostPort: m.hostPort, hostIP: m.hostIP ?? '' }));
}

/**
 * The container's addresses: IPs of the sandbox interface named CNI_IFNAME (first IPv4 and IPv6 are used). An
 * address that names no interface counts as the container's; one that names another interface never does, so
 * a prevResult without an address on CNI_IFNAME publishes nothing rather than another interface's address.
 */
function containerAddresses(result: CniResult, ifname: string): string[] {
  const ifaces = result.interfaces ?? [];
  return (result.ips ?? [])
    .filter((ip) => {
      if (ip.interface === undefined) return true;
      const iface = ifaces[ip.interface];
      return iface?.name === ifname && iface.sandbox !== undefined && iface.sandbox !== '';
    })
    .map((ip) => ip.address);
}

/**
 * The host side of the attachment in the previous result: its first interface outside any sandbox (the bridge of
 * the bridge plugin, the host end of ptp's veth). Connections that arrive there are hairpin.
 */
function hostSide(prev: CniResult | undefined): { hostInterface?: string } {
  const name = prev?.interfaces?.find((i) => !i.sandbox)?.name;
  return name ? { hostInterface: name } : {};
}

function forwardSpec(key: AttachmentKey, s: PortmapSettings, addresses: string[], prev: CniResult): PortForwardSpec {
  return {
    ...key,
    ...hostSide(prev),
    containerAddresses: addresses,
    mappings: s.mappings,
    snat: s.snat,
    masqAll: s.masqAll,
    ...(s.markMasqBit !== undefined && { markMasqBit: s.markMasqBit }),
    ...(s.externalSetMarkChain !== undefined && { externalSetMarkChain: s.externalSetMarkChain }),
    conditions: { 4: s.conditionsV4, 6: s.conditionsV6 },
  };
}

/** Whether a packet from 127.0.0.1 can match one of the mappings (then the localhost path needs route_localnet). */
function reachableFromLocalhost(mappings: PortMapping[]): boolean {
  return mappings.some((m) => !m.hostIP || m.hostIP === '0.0.0.0' || m.hostIP.startsWith('127.'));
}

const udpPorts = (claims: { protocol: string; hostPort: number }[]) =>
  claims.filter((c) => c.protocol === 'udp').map((c) => c.hostPort);

function requirePrevResult(ctx: PluginContext): CniResult {
  if (!ctx.prevResult) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      'the portmap plugin must be chained after a plugin that returns a result (prevResult is missing)',
    );
  }
  return ctx.prevResult;
}

/**
 * A mapping on a host address of a family the container has no address of would be shown as published and never
 * answer (there is nothing to DNAT it to): refused, before any port is claimed.
 */
function refuseOtherFamily(mappings: readonly PortMapping[], addresses: readonly string[]): void {
  const families = new Set(addresses.map((a) => parseCidr(a).family));
  for (const m of mappings) {
    if (!m.hostIP) continue;
    const family = parseIp(m.hostIP)?.family ?? 4;
    if (families.has(family)) continue;
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `failed to publish ${formatHostPort(m.hostIP, m.hostPort)}/${m.protocol}: the container has no IPv${family} address to forward it to (its network is IPv${family === 6 ? 4 : 6}-only)`,
      {
        hint:
          family === 6
            ? 'publish without a host address or on an IPv4 one, or use a network with IPv6 (ctnet network create --ipv6)'
            : 'publish without a host address or on an IPv6 one, or give the network an IPv4 subnet',
      },
    );
  }
}

async function add(ctx: PluginContext<PortmapNetConf>): Promise<CniResult> {
  const prev = requirePrevResult(ctx);
  const s = portmapSettings(ctx.conf);
  if (!s.mappings.length) return prev;
  const key = attachment(ctx, s);
  const addresses = containerAddresses(prev, ctx.env.ifname);
  if (!addresses.length) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `failed to publish ports: prevResult has no address for interface "${ctx.env.ifname}"`,
      { hint: 'the runtime passed CNI_IFNAME of another attachment, or the previous plugin returned no address for it' },
    );
  }
  refuseOtherFamily(s.mappings, addresses);
  const spec = forwardSpec(key, s, addresses, prev);
  const firewall = await openFirewall(s.backend);
  const store = new ReservationStore(s.stateDir);
  await store.claim(key, claimsOf(s.mappings));
  const undo = new UndoStack();
  undo.push('release the host ports', () => store.release(key));
  undo.push('remove the port forwards', () => firewall.teardownPortForwards(key));
  try {
    await firewall.setupPortForwards(spec);
    const v4 = addresses.map(parseCidr).find((a) => a.family === 4);
    if (s.snat && v4 && reachableFromLocalhost(s.mappings)) enableRouteLocalnet(v4.address);
  } catch (err) {
    await undo.unwind();
    throw err;
  }
  await flushUdpConntrack(udpPorts(s.mappings));
  return prev;
}

/**
 * DEL's view of the config. One that ADD would refuse still names the network, so the attachment's forwards (found
 * by name) and its claims are removed; its mappings and options are then unknown and not needed.
 */
function settingsForDel(ctx: PluginContext<PortmapNetConf>): PortmapSettings {
  if (!ctx.configProblems) return portmapSettings(ctx.conf);
  const { cniVersion, name, type, stateDir, backend } = ctx.conf;
  return portmapSettings({ cniVersion, name, type, stateDir, backend });
}

async function del(ctx: PluginContext<PortmapNetConf>): Promise<void> {
  const s = settingsForDel(ctx);
  const key = attachment(ctx, s);
  const store = new ReservationStore(s.stateDir);
  const held = store.held(key);
  // Fast path: nothing claimed and nothing sent: this attachment never published anything.
  if (!held && !s.mappings.length) return;
  const firewall = await openFirewall(s.backend);
  // What the reservations and prevResult tell only spares the firewall a read (see KnownForwards).
  const addresses = ctx.prevResult ? containerAddresses(ctx.prevResult, ctx.env.ifname) : [];
  const known: KnownForwards | undefined =
    held?.length && addresses.length
      ? {
          forwards: held,
          families: [...new Set(addresses.map((a) => parseCidr(a).family))],
          addresses,
          snat: s.snat,
          masqAll: s.masqAll,
          ...hostSide(ctx.prevResult),
        }
      : undefined;
  const failures = new ErrorCollector();
  await failures.attempt('remove the port forwards', () => firewall.teardownPortForwards(key, known));
  await failures.attempt('release the host ports', () => store.release(key));
  await flushUdpConntrack(udpPorts([...(held ?? []), ...s.mappings]));
  failures.throwIfAny('remove published ports');
}

async function check(ctx: PluginContext<PortmapNetConf>): Promise<void> {
  const prev = requirePrevResult(ctx);
  const s = portmapSettings(ctx.conf);
  if (!s.mappings.length) return;
  const key = attachment(ctx, s);
  const firewall = await openFirewall(s.backend);
  await firewall.checkPortForwards(forwardSpec(key, s, containerAddresses(prev, ctx.env.ifname), prev));
  if (!new ReservationStore(s.stateDir).held(key)) {
    throw new CtnetError(
      ErrorCode.internal,
      `failed to check published ports: no reservation recorded for container "${key.containerId}"`,
    );
  }
}

async function gc(ctx: GcContext<PortmapNetConf>): Promise<void> {
  const s = portmapSettings(ctx.conf);
  const valid = ctx.validAttachments.map((a) => ({ network: s.network, containerId: a.containerID, ifname: a.ifname }));
  const failures = new ErrorCollector();
  await failures.attempt('collect port forwards', async () => (await openFirewall(s.backend)).gcPortForwards(s.network, valid));
  await failures.attempt('collect host-port reservations', async () => {
    const released = await new ReservationStore(s.stateDir).gc(s.network, valid);
    await flushUdpConntrack(udpPorts(released.flatMap((r) => r.ports)));
  });
  failures.throwIfAny('collect garbage');
}

export const portmapPlugin: CniPlugin<PortmapNetConf> = {
  name: 'portmap',
  config: portmapConfig,
  validate: (conf) => {
    portmapSettings(conf);
  },
  add,
  del,
  check,
  gc,
};
