/**
 * netns/: kernel network state, by namespace.
 *
 * - Namespaces: createNetns / deleteNetns (pinned files, as `ip netns` makes them), isNetns, sameNetns.
 * - Switching: inNetns(path, fn) runs synchronous code with the main thread inside a namespace
 *   (setns through koffi), always switching back. Sockets and /proc/sys/net files opened there
 *   stay bound to that namespace.
 * - Sysctls: readSysctl / writeSysctl / ensureSysctl per namespace; writeSysctls(ns, [...]) writes
 *   several in one switch. Files are opened below directories kept open (see sysctl.ts: the path
 *   lookup under /proc/sys/net grows with the number of namespaces on the machine).
 * - Debugging: nl.routeGet (as `ip route get`), nl.linkStats, nl.listNeighbors, nl.bridgeVlans, listNetns;
 *   socketIn(path, …) gives a TCP/UDP socket fd made inside a namespace, for probes without spawning a process.
 * - rtnetlink: withNetlink(path, async (nl) => …) gives a Netlink bound to one namespace, closed afterwards, with
 *   one module per kernel object (netlink.ts lists them): links (veth, bridge, ports; one updateLink for MTU, MAC,
 *   up/down, promisc, port flags, devconf), addresses, routes, neighbours and FDB entries, bridge VLANs, VXLAN
 *   links. deleteLinkOffThread deletes a link without waiting for the kernel's RCU grace period. Errors are
 *   CtnetError "failed to <verb> <object>: <cause>" whose cause carries the errno name (hasErrno(err, 'EEXIST'));
 *   a name clash on create is code 103.
 * - Overlays: ensureVxlan / getVxlan / listVxlans (unicast VTEPs: no group, no learning), neighbour and FDB entries
 *   (setNeighbour, setFdb, …, permanent), routes owned by a protocol number (replaceOwnedRoute, listOwnedRoutes,
 *   deleteOwnedRoute; onlink gateways).
 *
 * Importing this module loads nothing heavy: koffi and netlink are required on first use.
 */

export { NetlinkError } from '../core/index.js';
export type { AddAddressOptions, AddressInfo } from './address.js';
export { netnsCookie } from './cookie.js';
export { type LinkChange, type LinkInfo, type LinkRef, type LinkStats, parseLink, type VethOptions } from './link.js';
export { deleteLinkOffThread } from './link-delete.js';
export { randomVethName } from './names.js';
export { createNetns, defaultNetnsDir, deleteNetns, isNetns, listNetns, sameNetns } from './namespaces.js';
export {
  delFdb,
  delNeighbour,
  type FdbEntry,
  listFdb,
  listNeighbours,
  type NeighbourEntry,
  nudPermanent,
  setFdb,
  setNeighbour,
} from './neighbour.js';
export { Netlink, withNetlink } from './netlink.js';
export {
  deleteOwnedRoute,
  listOwnedRoutes,
  type OwnedRoute,
  type OwnedRouteSpec,
  type RouteInfo,
  type RouteSpec,
  replaceOwnedRoute,
} from './route.js';
export { inNetns, socketIn } from './switch.js';
export { ensureSysctl, readSysctl, type SysctlSetting, sysctlPath, writeSysctl, writeSysctls } from './sysctl.js';
export type { BridgeVlanInfo } from './vlan.js';
export {
  defaultVxlanPort,
  ensureVxlan,
  getVxlan,
  listVxlans,
  type VxlanInfo,
  type VxlanSpec,
  vxlanMatches,
  vxlanOverheadV4,
} from './vxlan.js';
