/**
 * Neighbour (ARP/NDP) entries and bridge forwarding (FDB) entries over rtnetlink. Both are RTM_*NEIGH messages:
 * a neighbour entry maps an IP to a MAC on a link; an FDB entry (family AF_BRIDGE) maps a MAC to a link or, on a
 * VXLAN link, to the remote VTEP address its frames are sent to. Entries made here are permanent: the kernel
 * neither ages nor probes them.
 */
import { AttrWriter, hasErrno, ipBytes, parseAttrs, wrapError } from '../core/index.js';
import { formatMac, ipOrThrow, ipText, macOrThrow } from './address-attr.js';
import { indexOf, indexOrUndefined, type LinkRef, linkText } from './link.js';
import type { Netlink } from './netlink.js';
import * as c from './rtnl-codec.js';

const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
/** NUD_PERMANENT (linux/neighbour.h). */
export const nudPermanent = 0x80;
/** NTF_SELF: the entry belongs to the device itself (a VXLAN link's own table), not to a bridge it is a port of. */
const NTF_SELF = 0x02;

export interface NeighbourEntry {
  ifindex: number;
  ip: string;
  mac?: string;
  /** NUD_* bits: 0x02 reachable, 0x04 stale, 0x20 failed, 0x80 permanent, … */
  state: number;
}

export interface FdbEntry {
  ifindex: number;
  mac: string;
  /** For a VXLAN link: the remote VTEP address. */
  dst?: string;
  state: number;
  /** NTF_* flags (0x02 self, 0x04 master, …). */
  flags: number;
}

/** Makes `ip` on `dev` resolve to `mac`, permanently (replacing any entry there was: `ip neigh replace … nud permanent`). */
export async function setNeighbour(nl: Netlink, dev: LinkRef, ip: string, mac: string): Promise<void> {
  const what = `set neighbour ${ip} lladdr ${mac} on ${linkText(dev)}${nl.where}`;
  const addr = ipOrThrow(ip, what);
  const index = await indexOf(nl, dev, what);
  const body = new AttrWriter()
    .raw(c.ndmsg(addr.family === 4 ? c.AF_INET : c.AF_INET6, index, nudPermanent, 0))
    .bytes(c.NDA_DST, ipBytes(addr))
    .bytes(c.NDA_LLADDR, macOrThrow(mac, what));
  try {
    await nl.request(RTM_NEWNEIGH, c.NLM_F_CREATE | c.NLM_F_REPLACE, body.toBuffer());
  } catch (err) {
    throw wrapError(what, err);
  }
}

/** Removes the neighbour entry of `ip` on `dev`; an entry (or link) that is not there is fine. */
export async function delNeighbour(nl: Netlink, dev: LinkRef, ip: string): Promise<void> {
  const what = `delete neighbour ${ip} on ${linkText(dev)}${nl.where}`;
  const addr = ipOrThrow(ip, what);
  const index = await indexOrUndefined(nl, dev);
  if (index === undefined) return;
  const body = new AttrWriter()
    .raw(c.ndmsg(addr.family === 4 ? c.AF_INET : c.AF_INET6, index, 0, 0))
    .bytes(c.NDA_DST, ipBytes(addr));
  try {
    await nl.request(RTM_DELNEIGH, 0, body.toBuffer());
  } catch (err) {
    if (hasErrno(err, 'ENOENT', 'ESRCH', 'ENODEV')) return;
    throw wrapError(what, err);
  }
}

/** Neighbour entries of one link (all links when dev is undefined), IPv4 and IPv6. */
export async function listNeighbours(nl: Netlink, dev?: LinkRef): Promise<NeighbourEntry[]> {
  const index = dev === undefined ? undefined : await indexOrUndefined(nl, dev);
  if (dev !== undefined && index === undefined) return [];
  let msgs: Buffer[];
  try {
    msgs = await nl.dump(c.RTM_GETNEIGH, c.ndmsg(c.AF_UNSPEC, 0, 0, 0));
  } catch (err) {
    throw wrapError(`list neighbours${dev === undefined ? '' : ` of ${linkText(dev)}`}${nl.where}`, err);
  }
  const out: NeighbourEntry[] = [];
  for (const m of msgs) {
    const family = m.readUInt8(0);
    if (family !== c.AF_INET && family !== c.AF_INET6) continue;
    const ifindex = m.readInt32LE(4);
    if (index !== undefined && ifindex !== index) continue;
    const a = parseAttrs(m, 12);
    const dst = a.get(c.NDA_DST);
    if (!dst) continue;
    const entry: NeighbourEntry = { ifindex, ip: ipText(dst), state: m.readUInt16LE(8) };
    const ll = a.get(c.NDA_LLADDR);
    if (ll && ll.length === 6) entry.mac = formatMac(ll);
    out.push(entry);
  }
  return out;
}

/**
 * Makes frames for `mac` on the VXLAN link `dev` go to the VTEP at `dst`, permanently (`bridge fdb replace MAC dev
 * DEV dst DST self permanent`). One entry per MAC: a replaced entry's old destination is gone.
 */
export async function setFdb(nl: Netlink, dev: LinkRef, mac: string, dst: string): Promise<void> {
  const what = `set FDB entry ${mac} dst ${dst} on ${linkText(dev)}${nl.where}`;
  const addr = ipOrThrow(dst, what);
  const index = await indexOf(nl, dev, what);
  const body = new AttrWriter()
    .raw(c.ndmsg(c.AF_BRIDGE, index, nudPermanent, NTF_SELF))
    .bytes(c.NDA_LLADDR, macOrThrow(mac, what))
    .bytes(c.NDA_DST, ipBytes(addr));
  try {
    await nl.request(RTM_NEWNEIGH, c.NLM_F_CREATE | c.NLM_F_REPLACE, body.toBuffer());
  } catch (err) {
    throw wrapError(what, err);
  }
}

/** Removes the FDB entry for `mac` on `dev` (with `dst`, only the entry to that VTEP); absent is fine. */
export async function delFdb(nl: Netlink, dev: LinkRef, mac: string, dst?: string): Promise<void> {
  const what = `delete FDB entry ${mac} on ${linkText(dev)}${nl.where}`;
  const index = await indexOrUndefined(nl, dev);
  if (index === undefined) return;
  const body = new AttrWriter().raw(c.ndmsg(c.AF_BRIDGE, index, 0, NTF_SELF)).bytes(c.NDA_LLADDR, macOrThrow(mac, what));
  if (dst !== undefined) body.bytes(c.NDA_DST, ipBytes(ipOrThrow(dst, what)));
  try {
    await nl.request(RTM_DELNEIGH, 0, body.toBuffer());
  } catch (err) {
    if (hasErrno(err, 'ENOENT', 'ESRCH', 'ENODEV')) return;
    throw wrapError(what, err);
  }
}

/** FDB entries of one link (`bridge fdb show dev DEV`), or of every link. */
export async function listFdb(nl: Netlink, dev?: LinkRef): Promise<FdbEntry[]> {
  const index = dev === undefined ? undefined : await indexOrUndefined(nl, dev);
  if (dev !== undefined && index === undefined) return [];
  let msgs: Buffer[];
  try {
    msgs = await nl.dump(c.RTM_GETNEIGH, c.ndmsg(c.AF_BRIDGE, 0, 0, 0));
  } catch (err) {
    throw wrapError(`list FDB entries${dev === undefined ? '' : ` of ${linkText(dev)}`}${nl.where}`, err);
  }
  const out: FdbEntry[] = [];
  for (const m of msgs) {
    if (m.readUInt8(0) !== c.AF_BRIDGE) continue;
    const ifindex = m.readInt32LE(4);
    if (index !== undefined && ifindex !== index) continue;
    const a = parseAttrs(m, 12);
    const ll = a.get(c.NDA_LLADDR);
    if (ll?.length !== 6) continue;
    const entry: FdbEntry = { ifindex, mac: formatMac(ll), state: m.readUInt16LE(8), flags: m.readUInt8(10) };
    const dst = a.get(c.NDA_DST);
    if (dst) entry.dst = ipText(dst);
    out.push(entry);
  }
  return out;
}
