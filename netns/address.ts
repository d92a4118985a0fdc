/** Addresses of links over rtnetlink. */
import {
  AttrWriter,
  attrU32,
  type Cidr,
  CtnetError,
  ErrorCode,
  hasErrno,
  ipBytes,
  lastOf,
  parseAttrs,
  wrapError,
} from '../core/index.js';
import { cidrOrThrow, ipText } from './address-attr.js';
import { getLink, indexOf, type LinkRef, linkText, noSuchLink } from './link.js';
import type { Netlink } from './netlink.js';
import * as c from './rtnl-codec.js';

export interface AddressInfo {
  ifindex: number;
  family: 4 | 6;
  address: string;
  prefixLen: number;
  cidr: string;
  tentative: boolean;
  dadFailed: boolean;
  scope: number;
}

export interface AddAddressOptions {
  /** An address already there (IPv4: same address and prefix; IPv6: same address) is no error. */
  ignoreExists?: boolean;
  /** IFA_F_NOPREFIXROUTE: the kernel adds no route for the prefix. */
  noPrefixRoute?: boolean;
  /** IFA_F_NODAD: IPv6 duplicate address detection is skipped. */
  noDad?: boolean;
}

/** Adds an address to a link. True if it added it; false if it was already there and `ignoreExists` is set. */
export async function addAddress(nl: Netlink, ifname: LinkRef, cidr: string, opts: AddAddressOptions = {}): Promise<boolean> {
  const what = `add address ${cidr} to ${linkText(ifname)}${nl.where}`;
  const addr = cidrOrThrow(cidr, what);
  const index = await indexOf(nl, ifname, what);
  const flags = (opts.noPrefixRoute ? c.IFA_F_NOPREFIXROUTE : 0) | (opts.noDad ? c.IFA_F_NODAD : 0);
  const body = addressBody(addr, index, flags);
  if (addr.addr.family === 4 && addr.prefix < 31) body.bytes(c.IFA_BROADCAST, ipBytes(lastOf(addr)));
  try {
    await nl.request(c.RTM_NEWADDR, c.NLM_F_CREATE | c.NLM_F_EXCL, body.toBuffer());
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) throw noSuchLink(nl, ifname, what, err);
    if (hasErrno(err, 'EEXIST')) {
      if (opts.ignoreExists) return false;
      throw new CtnetError(ErrorCode.exists, `failed to ${what}: it is already there`, { cause: err });
    }
    if (addr.addr.family === 6 && hasErrno(err, 'EACCES')) {
      throw new CtnetError(ErrorCode.internal, `failed to ${what}: IPv6 is disabled on ${linkText(ifname)}`, {
        cause: err,
        hint: `set net.ipv6.conf.${typeof ifname === 'number' ? '<link>' : ifname}.disable_ipv6=0 (and net.ipv6.conf.all.disable_ipv6=0) in that namespace first`,
      });
    }
    throw wrapError(what, err);
  }
}

/** Removes an address; an address (or link) that is not there is fine. */
export async function delAddress(nl: Netlink, ifname: string, cidr: string): Promise<void> {
  const what = `delete address ${cidr} from ${ifname}${nl.where}`;
  const addr = cidrOrThrow(cidr, what);
  const link = await getLink(nl, ifname);
  if (!link) return;
  try {
    await nl.request(c.RTM_DELADDR, 0, addressBody(addr, link.index, 0).toBuffer());
  } catch (err) {
    if (hasErrno(err, 'EADDRNOTAVAIL', 'ENOENT', 'ESRCH', 'ENODEV')) return;
    throw wrapError(what, err);
  }
}

/**
 * Addresses of one link (none if it does not exist) or of all links; of one family when `family` is given. The
 * kernel filters a dump by family but not by link (without strict checking, which the binding cannot enable), and a
 * host with a thousand veths has a thousand IPv6 link-local addresses: asking for IPv4 alone skips them.
 */
export async function listAddresses(nl: Netlink, ifname?: string, family?: 4 | 6): Promise<AddressInfo[]> {
  let index: number | undefined;
  if (ifname !== undefined) {
    const link = await getLink(nl, ifname);
    if (!link) return [];
    index = link.index;
  }
  try {
    const af = family === 4 ? c.AF_INET : family === 6 ? c.AF_INET6 : c.AF_UNSPEC;
    const msgs = await nl.dump(c.RTM_GETADDR, c.ifaddrmsg({ family: af, prefixLen: 0, index: 0 }));
    const all = msgs.map(parseAddress).filter((a): a is AddressInfo => a !== undefined);
    return index === undefined ? all : all.filter((a) => a.ifindex === index);
  } catch (err) {
    throw wrapError(`list addresses${ifname ? ` of ${ifname}` : ''}${nl.where}`, err);
  }
}

function addressBody(cidr: Cidr, index: number, flags: number): AttrWriter {
  const family = cidr.addr.family === 4 ? c.AF_INET : c.AF_INET6;
  const bytes = ipBytes(cidr.addr);
  const body = new AttrWriter()
    .raw(c.ifaddrmsg({ family, prefixLen: cidr.prefix, flags, index }))
    .bytes(c.IFA_LOCAL, bytes)
    .bytes(c.IFA_ADDRESS, bytes);
  if (flags > 0xff) body.u32(c.IFA_FLAGS, flags);
  return body;
}

function parseAddress(m: Buffer): AddressInfo | undefined {
  const family = m.readUInt8(0);
  if (family !== c.AF_INET && family !== c.AF_INET6) return undefined;
  const prefixLen = m.readUInt8(1);
  const a = parseAttrs(m, 8);
  const flags = attrU32(a, c.IFA_FLAGS) ?? m.readUInt8(2);
  const raw = family === c.AF_INET ? (a.get(c.IFA_LOCAL) ?? a.get(c.IFA_ADDRESS)) : (a.get(c.IFA_ADDRESS) ?? a.get(c.IFA_LOCAL));
  if (!raw) return undefined;
  const address = ipText(raw);
  return {
    ifindex: m.readUInt32LE(4),
    family: family === c.AF_INET ? 4 : 6,
    address,
    prefixLen,
    cidr: `${address}/${prefixLen}`,
    tentative: (flags & c.IFA_F_TENTATIVE) !== 0,
    dadFailed: (flags & c.IFA_F_DADFAILED) !== 0,
    scope: m.readUInt8(3),
  };
}
