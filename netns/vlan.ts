/** Bridge VLANs over rtnetlink (AF_BRIDGE link messages), as the `bridge vlan` command sets and shows them. */
import { AttrWriter, CtnetError, ErrorCode, hasErrno, parseAttrList, parseAttrs, wrapError } from '../core/index.js';
import { getLink, requireLink, vlanError } from './link.js';
import type { Netlink } from './netlink.js';
import * as c from './rtnl-codec.js';

export interface BridgeVlanInfo {
  vid: number;
  pvid: boolean;
  untagged: boolean;
}

/** Adds VLAN `vid` to a bridge port (or to the bridge itself, as `bridge vlan add … self`). */
export async function bridgeVlanAdd(
  nl: Netlink,
  port: string,
  vid: number,
  opts: { pvid?: boolean; untagged?: boolean } = {},
): Promise<void> {
  const what = `add VLAN ${vid} to bridge port ${port}${nl.where}`;
  const flags = (opts.pvid ? c.BRIDGE_VLAN_INFO_PVID : 0) | (opts.untagged ? c.BRIDGE_VLAN_INFO_UNTAGGED : 0);
  const body = await vlanBody(nl, port, vid, flags, what);
  try {
    await nl.request(c.RTM_SETLINK, 0, body);
  } catch (err) {
    throw vlanError(what, err);
  }
}

/** Removes VLAN `vid` from a bridge port; a VLAN (or port) that is not there is fine. */
export async function bridgeVlanDel(nl: Netlink, port: string, vid: number): Promise<void> {
  const what = `delete VLAN ${vid} from bridge port ${port}${nl.where}`;
  if (!(await getLink(nl, port))) return;
  const body = await vlanBody(nl, port, vid, 0, what);
  try {
    await nl.request(c.RTM_DELLINK, 0, body);
  } catch (err) {
    if (hasErrno(err, 'ENOENT', 'ENODEV')) return;
    throw vlanError(what, err);
  }
}

async function vlanBody(nl: Netlink, port: string, vid: number, flags: number, what: string): Promise<Buffer> {
  if (!Number.isInteger(vid) || vid < 1 || vid > 4094) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to ${what}: VLAN id must be 1..4094`);
  }
  const link = await requireLink(nl, port, what);
  // struct bridge_vlan_info: flags (u16), vid (u16).
  const info = Buffer.alloc(4);
  info.writeUInt16LE(flags, 0);
  info.writeUInt16LE(vid, 2);
  return new AttrWriter()
    .raw(c.ifinfomsg({ family: c.AF_BRIDGE, index: link.index }))
    .nest(c.IFLA_AF_SPEC, (spec) => {
      if (link.kind === 'bridge') spec.u16(c.IFLA_BRIDGE_FLAGS, c.BRIDGE_FLAGS_SELF);
      spec.bytes(c.IFLA_BRIDGE_VLAN_INFO, info);
    })
    .toBuffer();
}

/** The VLANs of one bridge port (as `bridge vlan show dev PORT`). */
export async function bridgeVlans(nl: Netlink, port: string): Promise<BridgeVlanInfo[]> {
  const link = await getLink(nl, port);
  if (!link) return [];
  const body = new AttrWriter()
    .raw(c.ifinfomsg({ family: c.AF_BRIDGE }))
    .u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_BRVLAN)
    .toBuffer();
  try {
    const msgs = await nl.dump(c.RTM_GETLINK, body);
    const vlans: BridgeVlanInfo[] = [];
    for (const m of msgs) {
      if (m.readInt32LE(4) !== link.index) continue;
      const spec = parseAttrs(m, 16).get(c.IFLA_AF_SPEC);
      if (!spec) continue;
      for (const [type, v] of parseAttrList(spec)) {
        if (type !== c.IFLA_BRIDGE_VLAN_INFO || v.length < 4) continue;
        const f = v.readUInt16LE(0);
        vlans.push({
          vid: v.readUInt16LE(2),
          pvid: (f & c.BRIDGE_VLAN_INFO_PVID) !== 0,
          untagged: (f & c.BRIDGE_VLAN_INFO_UNTAGGED) !== 0,
        });
      }
    }
    return vlans;
  } catch (err) {
    throw wrapError(`list VLANs of ${port}${nl.where}`, err);
  }
}
