/**
 * Routes a program owns, marked by a route protocol number of its own (rtm_protocol, as routing daemons do): it
 * replaces them in one request, lists exactly its own (to reconcile after a restart) and deletes only its own.
 * Also the onlink flag: a gateway the kernel takes as on the link without a route to it (VXLAN peers).
 */
import { CtnetError, ErrorCode, hasErrno, ipBytes, networkOf, wrapError } from '../core/index.js';
import { cidrOrThrow, ipOrThrow, ipText } from './address-attr.js';
import type { LinkRef, Netlink } from './netlink.js';
import * as c from './rtnl-codec.js';
import { AttrWriter, attrU32, parseAttrs } from './rtnl-codec.js';

/** RTNH_F_ONLINK (linux/rtnetlink.h), in rtm_flags. */
const RTNH_F_ONLINK = 0x4;

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

/** Adds the route, or replaces the one to the same destination in that table (`ip route replace … proto N`). */
export async function replaceOwnedRoute(nl: Netlink, route: OwnedRouteSpec): Promise<void> {
  const what = `replace route ${describe(route)}${where(nl)}`;
  checkProtocol(route.protocol, what);
  const dst = cidrOrThrow(route.dst, what);
  const gw = route.gw === undefined ? undefined : ipOrThrow(route.gw, what);
  if (gw && gw.family !== dst.addr.family) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: gateway ${route.gw} is not IPv${dst.addr.family}`);
  }
  const oif = typeof route.dev === 'number' ? route.dev : (await nl.getLink(route.dev))?.index;
  if (oif === undefined) throw new CtnetError(ErrorCode.internal, `failed to ${what}: no link named "${route.dev}"${where(nl)}`);
  const table = route.table ?? c.RT_TABLE_MAIN;
  const body = new AttrWriter().raw(
    c.rtmsg({
      family: dst.addr.family === 4 ? c.AF_INET : c.AF_INET6,
      dstLen: dst.prefix,
      table,
      protocol: route.protocol,
      scope: gw ? c.RT_SCOPE_UNIVERSE : c.RT_SCOPE_LINK,
      type: c.RTN_UNICAST,
      flags: route.onlink ? RTNH_F_ONLINK : 0,
    }),
  );
  if (dst.prefix > 0) body.bytes(c.RTA_DST, ipBytes(networkOf(dst)));
  if (gw) body.bytes(c.RTA_GATEWAY, ipBytes(gw));
  body.u32(c.RTA_OIF, oif);
  body.u32(c.RTA_TABLE, table);
  try {
    await nl.request(c.RTM_NEWROUTE, c.NLM_F_CREATE | c.NLM_F_REPLACE, body.toBuffer());
  } catch (err) {
    throw wrapError(what, err);
  }
}

/** The routes of one protocol number (in every table unless `table` is given), IPv4 and IPv6. */
export async function listOwnedRoutes(nl: Netlink, protocol: number, table?: number): Promise<OwnedRoute[]> {
  let msgs: Buffer[];
  try {
    msgs = await nl.request(c.RTM_GETROUTE, c.NLM_F_DUMP, c.rtmsg({ family: c.AF_UNSPEC, table: 0 }));
  } catch (err) {
    throw wrapError(`list routes of protocol ${protocol}${where(nl)}`, err);
  }
  const out: OwnedRoute[] = [];
  for (const m of msgs) {
    const route = parseOwnedRoute(m);
    if (route && route.protocol === protocol && (table === undefined || route.table === table)) out.push(route);
  }
  return out;
}

/** Deletes the route to `dst` of protocol `protocol` (in `table`, main by default); absent is fine. */
export async function deleteOwnedRoute(nl: Netlink, dst: string, protocol: number, table = c.RT_TABLE_MAIN): Promise<void> {
  const what = `delete route ${dst} proto ${protocol}${where(nl)}`;
  const d = cidrOrThrow(dst, what);
  const body = new AttrWriter().raw(
    c.rtmsg({
      family: d.addr.family === 4 ? c.AF_INET : c.AF_INET6,
      dstLen: d.prefix,
      table,
      protocol,
      scope: c.RT_SCOPE_NOWHERE,
    }),
  );
  if (d.prefix > 0) body.bytes(c.RTA_DST, ipBytes(networkOf(d)));
  body.u32(c.RTA_TABLE, table);
  try {
    await nl.request(c.RTM_DELROUTE, 0, body.toBuffer());
  } catch (err) {
    if (hasErrno(err, 'ESRCH', 'ENOENT', 'ENODEV')) return;
    throw wrapError(what, err);
  }
}

function parseOwnedRoute(m: Buffer): OwnedRoute | undefined {
  const family = m.readUInt8(0);
  if (family !== c.AF_INET && family !== c.AF_INET6) return undefined;
  if (m.readUInt32LE(8) & c.RTM_F_CLONED) return undefined;
  const a = parseAttrs(m, 12);
  const dst = a.get(c.RTA_DST) ?? Buffer.alloc(family === c.AF_INET ? 4 : 16);
  const route: OwnedRoute = {
    dst: `${ipText(dst)}/${m.readUInt8(1)}`,
    onlink: (m.readUInt32LE(8) & RTNH_F_ONLINK) !== 0,
    protocol: m.readUInt8(5),
    table: attrU32(a, c.RTA_TABLE) ?? m.readUInt8(4),
  };
  const gw = a.get(c.RTA_GATEWAY);
  if (gw) route.gw = ipText(gw);
  const oif = attrU32(a, c.RTA_OIF);
  if (oif !== undefined) route.oif = oif;
  return route;
}

function checkProtocol(protocol: number, what: string): void {
  if (!Number.isInteger(protocol) || protocol < 5 || protocol > 254) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: route protocol must be 5..254`);
  }
}

function describe(r: OwnedRouteSpec): string {
  const dev = typeof r.dev === 'number' ? `link #${r.dev}` : r.dev;
  return `${r.dst}${r.gw ? ` via ${r.gw}` : ''} dev ${dev}${r.onlink ? ' onlink' : ''} proto ${r.protocol}`;
}

function where(nl: Netlink): string {
  return nl.nsPath === undefined ? '' : ` in ${nl.nsPath}`;
}
