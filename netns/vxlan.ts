/**
 * VXLAN links over rtnetlink: a unicast VTEP (a VNI, a UDP port, a local address) with no multicast group and no
 * source learning, so the only forwarding entries it has are those the caller programs (neighbour.ts's FDB).
 */
import { AttrWriter, attrU8, attrU32, CtnetError, ErrorCode, hasErrno, parseAttrs, wrapError } from '../core/index.js';
import { ipAttr, ipOrThrow, ipText, parseMac } from './address-attr.js';
import { getLinkMessage, indexOrUndefined, type LinkInfo, type LinkRef, parseLink } from './link.js';
import type { Netlink } from './netlink.js';
import * as c from './rtnl-codec.js';

// VXLAN attributes inside IFLA_INFO_DATA (linux/if_link.h).
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_TTL = 5;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;

/** The IANA port is 4789; 8472 is what the Linux kernel and most overlays have used by default. */
export const defaultVxlanPort = 8472;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers: what a VXLAN link's MTU gives up. */
export const vxlanOverheadV4 = 50;

export interface VxlanSpec {
  /** VXLAN network identifier, 1..16777215. */
  vni: number;
  /** UDP destination (and listening) port. */
  port: number;
  /** The underlay address outgoing packets carry as source (a local IPv4 address). */
  local: string;
  /** The underlay link the packets leave by (optional: the kernel routes them otherwise). */
  underlay?: LinkRef;
  mtu?: number;
  /** The link's MAC; a stable one lets peers keep their neighbour entries when the link is made again. */
  mac?: string;
}

export interface VxlanInfo {
  link: LinkInfo;
  vni: number;
  port: number;
  local?: string;
  underlayIndex?: number;
  learning: boolean;
}

/** The VXLAN details of link `name`, or undefined when there is no such link or it is not a VXLAN link. */
export async function getVxlan(nl: Netlink, name: string): Promise<VxlanInfo | undefined> {
  const found = await getLinkMessage(nl, name);
  return found ? parseVxlan(found.msg) : undefined;
}

export function parseVxlan(msg: Buffer): VxlanInfo | undefined {
  const link = parseLink(msg);
  if (link.kind !== 'vxlan') return undefined;
  const info = parseAttrs(msg, 16).get(c.IFLA_LINKINFO);
  const raw = info ? parseAttrs(info).get(c.IFLA_INFO_DATA) : undefined;
  const data = raw ? parseAttrs(raw) : new Map<number, Buffer>();
  const port = data.get(IFLA_VXLAN_PORT);
  const local = data.get(IFLA_VXLAN_LOCAL);
  const vx: VxlanInfo = {
    link,
    vni: attrU32(data, IFLA_VXLAN_ID) ?? 0,
    port: port && port.length >= 2 ? port.readUInt16BE(0) : 0,
    learning: attrU8(data, IFLA_VXLAN_LEARNING) === 1,
  };
  if (local) vx.local = ipText(local);
  const underlay = attrU32(data, IFLA_VXLAN_LINK);
  if (underlay) vx.underlayIndex = underlay;
  return vx;
}

/** Whether an existing VXLAN link is the one `spec` asks for (MTU and MAC aside: those can be changed in place). */
export function vxlanMatches(vx: VxlanInfo, spec: VxlanSpec, underlayIndex?: number): boolean {
  return (
    vx.vni === spec.vni &&
    vx.port === spec.port &&
    vx.local === spec.local &&
    !vx.learning &&
    (underlayIndex === undefined || vx.underlayIndex === underlayIndex)
  );
}

/**
 * Makes link `name` the VXLAN link `spec` describes, up: created when absent; made again when a link of that name
 * has other VXLAN parameters (the kernel cannot change them in place) or is no VXLAN link at all, but only when
 * `replaceForeign` allows the latter. MTU and MAC are set in place. Returns the link as it is afterwards.
 */
export async function ensureVxlan(
  nl: Netlink,
  name: string,
  spec: VxlanSpec,
  opts: { replaceForeign?: boolean } = {},
): Promise<VxlanInfo> {
  const what = `ensure VXLAN link ${name} (VNI ${spec.vni}, port ${spec.port}, local ${spec.local})${nl.where}`;
  checkSpec(spec, what);
  const underlayIndex = spec.underlay === undefined ? undefined : await indexOrUndefined(nl, spec.underlay);
  if (spec.underlay !== undefined && underlayIndex === undefined) {
    throw new CtnetError(ErrorCode.internal, `failed to ${what}: no underlay link "${spec.underlay}"`);
  }
  const found = await getLinkMessage(nl, name);
  if (found) {
    const existing = found.link;
    const vx = parseVxlan(found.msg);
    if (vx && vxlanMatches(vx, spec, underlayIndex)) {
      const change: { mtu?: number; mac?: string; up: boolean } = { up: true };
      if (spec.mtu !== undefined && vx.link.mtu !== spec.mtu) change.mtu = spec.mtu;
      if (spec.mac !== undefined && vx.link.mac !== spec.mac.toLowerCase()) change.mac = spec.mac;
      if (change.mtu !== undefined || change.mac !== undefined || !vx.link.up) await nl.updateLink(vx.link.index, change);
      return (await getVxlan(nl, name)) as VxlanInfo;
    }
    if (!vx && !opts.replaceForeign) {
      throw new CtnetError(
        ErrorCode.exists,
        `failed to ${what}: a link named "${name}" exists and is ${existing.kind ? `a ${existing.kind}` : 'no VXLAN link'}`,
      );
    }
    await nl.deleteLink(name);
  }
  const body = new AttrWriter().raw(c.ifinfomsg({ flags: c.IFF_UP, change: c.IFF_UP })).string(c.IFLA_IFNAME, name);
  if (spec.mtu !== undefined) body.u32(c.IFLA_MTU, spec.mtu);
  if (spec.mac !== undefined) body.bytes(c.IFLA_ADDRESS, parseMac(spec.mac) as Buffer);
  body.nest(c.IFLA_LINKINFO, (li) => {
    li.kind(c.IFLA_INFO_KIND, 'vxlan');
    li.nest(c.IFLA_INFO_DATA, (d) => {
      d.u32(IFLA_VXLAN_ID, spec.vni);
      d.bytes(IFLA_VXLAN_LOCAL, ipAttr(spec.local, what));
      if (underlayIndex !== undefined) d.u32(IFLA_VXLAN_LINK, underlayIndex);
      d.u8(IFLA_VXLAN_TTL, 0);
      d.u8(IFLA_VXLAN_LEARNING, 0);
      const port = Buffer.alloc(2);
      port.writeUInt16BE(spec.port);
      d.bytes(IFLA_VXLAN_PORT, port);
    });
  });
  try {
    await nl.request(c.RTM_NEWLINK, c.NLM_F_CREATE | c.NLM_F_EXCL, body.toBuffer());
  } catch (err) {
    if (hasErrno(err, 'EEXIST')) {
      // Another VXLAN link already holds this VNI and port (the kernel allows one per VNI, port and address).
      throw new CtnetError(
        ErrorCode.exists,
        `failed to ${what}: a link of that name, or another link with that VNI and port, exists`,
        {
          cause: err,
        },
      );
    }
    throw wrapError(what, err);
  }
  const made = await getVxlan(nl, name);
  if (!made) throw new CtnetError(ErrorCode.internal, `failed to ${what}: it vanished right after creation`);
  return made;
}

/** Every VXLAN link in the namespace. */
export async function listVxlans(nl: Netlink): Promise<VxlanInfo[]> {
  const out: VxlanInfo[] = [];
  for (const link of await nl.listLinks()) {
    if (link.kind !== 'vxlan') continue;
    const vx = await getVxlan(nl, link.name);
    if (vx) out.push(vx);
  }
  return out;
}

function checkSpec(spec: VxlanSpec, what: string): void {
  if (!Number.isInteger(spec.vni) || spec.vni < 1 || spec.vni > 0xffffff) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: VNI must be 1..16777215`);
  }
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: port must be 1..65535`);
  }
  if (ipOrThrow(spec.local, what).family !== 4) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: the local address must be IPv4`);
  }
  if (spec.mac !== undefined && !parseMac(spec.mac)) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: "${spec.mac}" is not a MAC address`);
  }
  if (spec.mtu !== undefined && (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535)) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: MTU must be 68..65535`);
  }
}
