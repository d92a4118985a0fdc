/**
 * Netlink: the handle on one network namespace's rtnetlink socket (core's RtnlSocket, over core's codec), and its
 * operations by kernel object. Each operation lives in the module of its object, as a function of the handle; the
 * handle's methods are those functions, so a caller holds one object per namespace:
 *
 *   link.ts       links: get, list, bridges, veth pairs, changes (up, MAC, MTU, promisc, port flags, devconf),
 *                 delete, counters; link-delete.ts deletes a link off the main thread
 *   address.ts    addresses
 *   route.ts      routes, route lookups, routes owned by a protocol number
 *   neighbour.ts  neighbour (ARP/NDP) and bridge FDB entries
 *   vlan.ts       bridge VLANs
 *   vxlan.ts      VXLAN links
 *
 * Every operation is one request to the kernel (plus a name → index lookup where the kernel wants an index);
 * requests on one handle are serialized, because a reply interleaved with a multipart dump would break the dump.
 */

import { CtnetError, ErrorCode, type RequestSocket, RtnlSocket, threadNetnsKey, wrapError } from '../core/index.js';
import * as address from './address.js';
import type { LinkChange, LinkRef } from './link.js';
import * as link from './link.js';
import * as neighbour from './neighbour.js';
import type { RouteSpec } from './route.js';
import * as route from './route.js';
import { NLM_F_DUMP } from './rtnl-codec.js';
import { inNetns } from './switch.js';
import * as vlan from './vlan.js';

export class Netlink {
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly socket: RequestSocket,
    /** The namespace this socket is bound to (undefined: the process's own). */
    readonly nsPath: string | undefined,
    /** That namespace's identity (core threadNetnsKey, taken while switched into it): checked against the socket's. */
    netns?: string,
  ) {
    if (netns !== undefined && socket.netns !== netns) {
      throw new CtnetError(
        ErrorCode.internal,
        `netlink socket for ${nsPath ?? 'our own namespace'} was made in another namespace (${socket.netns ?? 'unknown'}, not ${netns})`,
      );
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }

  /** " in <nsPath>" for error messages (empty for our own namespace). */
  get where(): string {
    return this.nsPath === undefined ? '' : ` in ${this.nsPath}`;
  }

  /** One request; resolves with the payloads of the reply messages (none for a plain ACK). */
  request(type: number, flags: number, body: Buffer): Promise<Buffer[]> {
    const send = (): Promise<Buffer[]> => {
      if (this.closed) throw new CtnetError(ErrorCode.internal, 'netlink socket used after withNetlink() returned');
      return this.socket.request(type, flags, body);
    };
    const result = this.tail.then(send, send);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** A dump: every object of a kind (the kernel filters some dumps by the header's family, none by link). */
  dump(type: number, body: Buffer): Promise<Buffer[]> {
    return this.request(type, NLM_F_DUMP, body);
  }

  // ---- links (link.ts) ----

  getLink(ref: LinkRef) {
    return link.getLink(this, ref);
  }
  listLinks() {
    return link.listLinks(this);
  }
  ensureBridge(name: string, opts?: { mtu?: number; vlanFiltering?: boolean }) {
    return link.ensureBridge(this, name, opts);
  }
  createVeth(name: string, peerName: string, opts?: link.VethOptions) {
    return link.createVeth(this, name, peerName, opts);
  }
  updateLink(ref: LinkRef, change: LinkChange) {
    return link.updateLink(this, ref, change);
  }
  deleteLink(name: string) {
    return link.deleteLink(this, name);
  }
  linkStats(name: string) {
    return link.linkStats(this, name);
  }

  // ---- addresses (address.ts) ----

  addAddress(ref: LinkRef, cidr: string, opts?: address.AddAddressOptions) {
    return address.addAddress(this, ref, cidr, opts);
  }
  delAddress(name: string, cidr: string) {
    return address.delAddress(this, name, cidr);
  }
  listAddresses(name?: string, family?: 4 | 6) {
    return address.listAddresses(this, name, family);
  }

  // ---- routes (route.ts) ----

  addRoute(spec: RouteSpec, opts?: { ignoreExists?: boolean }) {
    return route.addRoute(this, spec, opts);
  }
  delRoute(spec: RouteSpec) {
    return route.delRoute(this, spec);
  }
  listRoutes(family?: 4 | 6, opts?: { table?: number | 'all' }) {
    return route.listRoutes(this, family, opts);
  }
  routeGet(dst: string, opts?: { from?: string; iif?: string; oif?: string }) {
    return route.routeGet(this, dst, opts);
  }

  // ---- neighbours (neighbour.ts) ----

  listNeighbors(ref?: LinkRef) {
    return neighbour.listNeighbours(this, ref);
  }

  // ---- bridge VLANs (vlan.ts) ----

  bridgeVlanAdd(port: string, vid: number, opts?: { pvid?: boolean; untagged?: boolean }) {
    return vlan.bridgeVlanAdd(this, port, vid, opts);
  }
  bridgeVlanDel(port: string, vid: number) {
    return vlan.bridgeVlanDel(this, port, vid);
  }
  bridgeVlans(port: string) {
    return vlan.bridgeVlans(this, port);
  }
}

/**
 * Runs `fn` with a netlink socket bound to the namespace at nsPath (undefined: our own). The
 * socket is created while the main thread is switched into that namespace and closed when `fn`
 * settles, so it never keeps the event loop alive.
 */
export async function withNetlink<T>(nsPath: string | undefined, fn: (nl: Netlink) => Promise<T>): Promise<T> {
  let socket: RtnlSocket;
  let netns: string;
  try {
    [socket, netns] = inNetns(nsPath, () => [new RtnlSocket(), threadNetnsKey()] as const);
  } catch (err) {
    if (err instanceof CtnetError) throw err;
    throw wrapError(`open a netlink socket${nsPath ? ` in ${nsPath}` : ''}`, err);
  }
  let nl: Netlink;
  try {
    nl = new Netlink(socket, nsPath, netns);
  } catch (err) {
    socket.close();
    throw err;
  }
  try {
    return await fn(nl);
  } finally {
    nl.close();
  }
}
