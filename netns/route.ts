/**
 * Routes over rtnetlink: plain routes, route lookups (`ip route get`), and routes a program owns, marked by a route
 * protocol number of its own (rtm_protocol, as routing daemons do): it replaces them in one request, lists exactly
 * its own (to reconcile after a restart) and deletes only its own. Also the onlink flag: a gateway the kernel takes
 * as on the link without a route to it (VXLAN peers).
 */
import {
  AttrWriter,
  attrU32,
  bitsOf,
  type Cidr,
  CtnetError,
  ErrorCode,
  hasErrno,
  type IpAddr,
  ipBytes,
  networkOf,
  parseAttrs,
  wrapError,
} from '../core/index.js';
import { cidrOrThrow, ipOrThrow, ipText } from './address-attr.js';
import { indexOf, type LinkRef, linkText, requireLink } from './link.js';
import type { Netlink } from './netlink.js';
import * as c from './rtnl-codec.js';

/** RTNH_F_ONLINK (linux/rtnetlink.h), in rtm_flags. */
const RTNH_F_ONLINK = 0x4;

export interface RouteInfo {
  family: 4 | 6;
  /** CIDR; '0.0.0.0/0' or '::/0' for a default route. */
  dst: string;
  gw?: string;
  oif?: number;
  table: number;
  scope: number;
  priority?: number;
  mtu?: number;
  advmss?: number;
  protocol: number;
  /** Preferred source address (RTA_PREFSRC), as `ip route` shows "src". */
  prefsrc?: string;
  /** RTN_* route type: 1 unicast, 2 local, 6 blackhole, 7 unreachable, … */
  type: number;
}

export interface RouteSpec {
  dst: string;
  gw?: string;
  /** The outgoing link, by name or by index. */
  dev?: LinkRef;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface OwnedRouteSpec {
  /** IPv4 or IPv6 CIDR. */
  dst: string;
  gw?: string;
  dev: LinkRef;
  /** Take the gateway as on the link even though no route says so. */
  onlink?: boolean;
  /** The owner's route protocol number (5..254, not one of the kernel's own). */
  protocol: number;
  table?: number;
}

export interface OwnedRoute {
  dst: string;
  gw?: string;
  oif?: number;
  onlink: boolean;
  protocol: number;
  table: number;
}

/** One route as RTM_NEWROUTE / RTM_DELROUTE carry it. */
interface RouteMessage {
  dst: Cidr;
  gw?: IpAddr;
  oif?: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags?: number;
  priority?: number;
  mtu?: number;
  advmss?: number;
}

function routeBody(r: RouteMessage): Buffer {
  const body = new AttrWriter().raw(
    c.rtmsg({
      family: r.dst.addr.family === 4 ? c.AF_INET : c.AF_INET6,
      dstLen: r.dst.prefix,
      table: r.table,
      protocol: r.protocol,
      scope: r.scope,
      type: r.type,
      flags: r.flags ?? 0,
    }),
  );
  if (r.dst.prefix > 0) body.bytes(c.RTA_DST, ipBytes(networkOf(r.dst)));
  if (r.gw) body.bytes(c.RTA_GATEWAY, ipBytes(r.gw));
  if (r.oif !== undefined) body.u32(c.RTA_OIF, r.oif);
  if (r.priority !== undefined) body.u32(c.RTA_PRIORITY, r.priority);
  body.u32(c.RTA_TABLE, r.table);
  if (r.mtu || r.advmss) {
    body.nest(c.RTA_METRICS, (m) => {
      if (r.mtu) m.u32(c.RTAX_MTU, r.mtu);
      if (r.advmss) m.u32(c.RTAX_ADVMSS, r.advmss);
    });
  }
  return body.toBuffer();
}

/** A route's destination and gateway from text, of one family. */
function destination(spec: { dst: string; gw?: string }, what: string): { dst: Cidr; gw?: IpAddr } {
  const dst = cidrOrThrow(spec.dst, what);
  if (spec.gw === undefined) return { dst };
  const gw = ipOrThrow(spec.gw, what);
  if (gw.family !== dst.addr.family) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: gateway ${spec.gw} is not IPv${dst.addr.family}`);
  }
  return { dst, gw };
}

export async function addRoute(nl: Netlink, route: RouteSpec, opts: { ignoreExists?: boolean } = {}): Promise<void> {
  const what = `add route ${describeRoute(route)}${nl.where}`;
  const { dst, gw } = destination(route, what);
  const oif = route.dev === undefined ? undefined : await indexOf(nl, route.dev, what);
  const body = routeBody({
    dst,
    ...(gw && { gw }),
    ...(oif !== undefined && { oif }),
    table: route.table ?? c.RT_TABLE_MAIN,
    protocol: c.RTPROT_BOOT,
    scope: route.scope ?? (gw === undefined && oif !== undefined ? c.RT_SCOPE_LINK : c.RT_SCOPE_UNIVERSE),
    type: c.RTN_UNICAST,
    ...(route.priority !== undefined && { priority: route.priority }),
    ...(route.mtu && { mtu: route.mtu }),
    ...(route.advmss && { advmss: route.advmss }),
  });
  try {
    await nl.request(c.RTM_NEWROUTE, c.NLM_F_CREATE | c.NLM_F_EXCL, body);
  } catch (err) {
    if (hasErrno(err, 'EEXIST')) {
      if (opts.ignoreExists) return;
      throw new CtnetError(ErrorCode.exists, `failed to ${what}: it is already there`, { cause: err });
    }
    throw wrapError(what, err);
  }
}

/** Removes a route; a route (or device) that is not there is fine. */
export async function delRoute(nl: Netlink, route: RouteSpec): Promise<void> {
  const what = `delete route ${describeRoute(route)}${nl.where}`;
  const { dst, gw } = destination(route, what);
  let oif: number | undefined;
  if (route.dev !== undefined) {
    oif = typeof route.dev === 'number' ? route.dev : (await nl.getLink(route.dev))?.index;
    if (oif === undefined) return;
  }
  const body = routeBody({
    dst,
    ...(gw && { gw }),
    ...(oif !== undefined && { oif }),
    table: route.table ?? c.RT_TABLE_MAIN,
    protocol: 0,
    scope: c.RT_SCOPE_NOWHERE,
    type: 0,
    ...(route.priority !== undefined && { priority: route.priority }),
  });
  await deleteRoute(nl, body, what);
}

async function deleteRoute(nl: Netlink, body: Buffer, what: string): Promise<void> {
  try {
    await nl.request(c.RTM_DELROUTE, 0, body);
  } catch (err) {
    if (hasErrno(err, 'ESRCH', 'ENOENT', 'ENODEV')) return;
    throw wrapError(what, err);
  }
}

/** Routes of one family (or both) in one table (main by default; 'all' for every table). */
export async function listRoutes(nl: Netlink, family?: 4 | 6, opts: { table?: number | 'all' } = {}): Promise<RouteInfo[]> {
  const af = family === undefined ? c.AF_UNSPEC : family === 4 ? c.AF_INET : c.AF_INET6;
  const table = opts.table ?? c.RT_TABLE_MAIN;
  try {
    const msgs = await nl.dump(c.RTM_GETROUTE, c.rtmsg({ family: af, table: 0 }));
    return msgs
      .map((m) => parseRoute(m))
      .filter((r): r is RouteInfo => r !== undefined && (table === 'all' || r.table === table));
  } catch (err) {
    throw wrapError(`list routes${nl.where}`, err);
  }
}

/**
 * The route the kernel would use for a packet to `dst` (as `ip route get`), or undefined when
 * there is none (unreachable). `from`/`iif` ask for a forwarded packet's route.
 */
export async function routeGet(
  nl: Netlink,
  dst: string,
  opts: { from?: string; iif?: string; oif?: string } = {},
): Promise<RouteInfo | undefined> {
  const what = `look up the route to ${dst}${nl.where}`;
  const target = ipOrThrow(dst, what);
  const body = new AttrWriter().raw(
    c.rtmsg({ family: target.family === 4 ? c.AF_INET : c.AF_INET6, dstLen: bitsOf(target.family), table: 0 }),
  );
  body.bytes(c.RTA_DST, ipBytes(target));
  if (opts.from !== undefined) body.bytes(c.RTA_SRC, ipBytes(ipOrThrow(opts.from, what)));
  if (opts.iif !== undefined) body.u32(c.RTA_IIF, (await requireLink(nl, opts.iif, what)).index);
  if (opts.oif !== undefined) body.u32(c.RTA_OIF, (await requireLink(nl, opts.oif, what)).index);
  try {
    const [msg] = await nl.request(c.RTM_GETROUTE, 0, body.toBuffer());
    return msg ? parseRoute(msg, true) : undefined;
  } catch (err) {
    if (hasErrno(err, 'ENETUNREACH', 'EHOSTUNREACH')) return undefined;
    throw wrapError(what, err);
  }
}

/** Adds the route, or replaces the one to the same destination in that table (`ip route replace … proto N`). */
export async function replaceOwnedRoute(nl: Netlink, route: OwnedRouteSpec): Promise<void> {
  const what = `replace route ${describeOwned(route)}${nl.where}`;
  checkProtocol(route.protocol, what);
  const { dst, gw } = destination(route, what);
  const oif = await indexOf(nl, route.dev, what);
  const body = routeBody({
    dst,
    ...(gw && { gw }),
    oif,
    table: route.table ?? c.RT_TABLE_MAIN,
    protocol: route.protocol,
    scope: gw ? c.RT_SCOPE_UNIVERSE : c.RT_SCOPE_LINK,
    type: c.RTN_UNICAST,
    flags: route.onlink ? RTNH_F_ONLINK : 0,
  });
  try {
    await nl.request(c.RTM_NEWROUTE, c.NLM_F_CREATE | c.NLM_F_REPLACE, body);
  } catch (err) {
    throw wrapError(what, err);
  }
}

/** The routes of one protocol number (in every table unless `table` is given), IPv4 and IPv6. */
export async function listOwnedRoutes(nl: Netlink, protocol: number, table?: number): Promise<OwnedRoute[]> {
  let msgs: Buffer[];
  try {
    msgs = await nl.dump(c.RTM_GETROUTE, c.rtmsg({ family: c.AF_UNSPEC, table: 0 }));
  } catch (err) {
    throw wrapError(`list routes of protocol ${protocol}${nl.where}`, err);
  }
  const out: OwnedRoute[] = [];
  for (const m of msgs) {
    const r = parseRoute(m);
    if (!r || r.protocol !== protocol || (table !== undefined && r.table !== table)) continue;
    const owned: OwnedRoute = { dst: r.dst, onlink: (m.readUInt32LE(8) & RTNH_F_ONLINK) !== 0, protocol, table: r.table };
    if (r.gw !== undefined) owned.gw = r.gw;
    if (r.oif !== undefined) owned.oif = r.oif;
    out.push(owned);
  }
  return out;
}

/** Deletes the route to `dst` of protocol `protocol` (in `table`, main by default); absent is fine. */
export async function deleteOwnedRoute(nl: Netlink, dst: string, protocol: number, table = c.RT_TABLE_MAIN): Promise<void> {
  const what = `delete route ${dst} proto ${protocol}${nl.where}`;
  const body = routeBody({ dst: cidrOrThrow(dst, what), table, protocol, scope: c.RT_SCOPE_NOWHERE, type: 0 });
  await deleteRoute(nl, body, what);
}

function parseRoute(m: Buffer, keepCloned = false): RouteInfo | undefined {
  const family = m.readUInt8(0);
  if (family !== c.AF_INET && family !== c.AF_INET6) return undefined;
  // Dumps may include cached (cloned) routes; a route lookup's answer is always marked cloned.
  if (!keepCloned && m.readUInt32LE(8) & c.RTM_F_CLONED) return undefined;
  const dstLen = m.readUInt8(1);
  const a = parseAttrs(m, 12);
  const dstBytes = a.get(c.RTA_DST) ?? Buffer.alloc(family === c.AF_INET ? 4 : 16);
  const route: RouteInfo = {
    family: family === c.AF_INET ? 4 : 6,
    dst: `${ipText(dstBytes)}/${dstLen}`,
    table: attrU32(a, c.RTA_TABLE) ?? m.readUInt8(4),
    scope: m.readUInt8(6),
    protocol: m.readUInt8(5),
    type: m.readUInt8(7),
  };
  const gw = a.get(c.RTA_GATEWAY);
  if (gw) route.gw = ipText(gw);
  const prefsrc = a.get(c.RTA_PREFSRC);
  if (prefsrc) route.prefsrc = ipText(prefsrc);
  const oif = attrU32(a, c.RTA_OIF);
  if (oif !== undefined) route.oif = oif;
  const priority = attrU32(a, c.RTA_PRIORITY);
  if (priority !== undefined) route.priority = priority;
  const metrics = a.get(c.RTA_METRICS);
  if (metrics) {
    const mx = parseAttrs(metrics);
    const mtu = attrU32(mx, c.RTAX_MTU);
    if (mtu !== undefined) route.mtu = mtu;
    const advmss = attrU32(mx, c.RTAX_ADVMSS);
    if (advmss !== undefined) route.advmss = advmss;
  }
  return route;
}

function checkProtocol(protocol: number, what: string): void {
  if (!Number.isInteger(protocol) || protocol < 5 || protocol > 254) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: route protocol must be 5..254`);
  }
}

function describeRoute(r: RouteSpec): string {
  return `${r.dst}${r.gw ? ` via ${r.gw}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.table ? ` table ${r.table}` : ''}`;
}

function describeOwned(r: OwnedRouteSpec): string {
  return `${r.dst}${r.gw ? ` via ${r.gw}` : ''} dev ${linkText(r.dev)}${r.onlink ? ' onlink' : ''} proto ${r.protocol}`;
}
