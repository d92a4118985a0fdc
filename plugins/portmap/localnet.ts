/**
 * Localhost publishing (cni-user-issues #4): a packet from 127.0.0.1 DNATed to a container is a martian on the way
 * out unless `route_localnet` is on for the interface that leads to the container. We set it on that interface only
 * (found by a route lookup of the container address in this namespace), never revert it (other containers on the
 * same bridge may rely on it), and the firewall drops non-loopback packets to 127/8 that it would otherwise let in.
 */
import { readFileSync } from 'node:fs';
import { wrapError } from '../../core/index.js';
import { ensureSysctl } from '../../netns/index.js';

/** Longest-prefix match of an IPv4 address in /proc/net/route; the outgoing interface name. */
export function interfaceToward(address: string, routeTable = readFileSync('/proc/net/route', 'utf8')): string | undefined {
  const target = address.split('.').reduce((acc, p) => (acc << 8) | Number(p), 0) >>> 0;
  // /proc/net/route prints addresses as little-endian hex words.
  const le = (hex: string) => {
    const n = Number.parseInt(hex, 16) >>> 0;
    return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0;
  };
  let best: { iface: string; bits: number } | undefined;
  for (const line of routeTable.split('\n').slice(1)) {
    const [iface, dest, , flags, , , , mask] = line.trim().split(/\s+/);
    if (!iface || !dest || !mask || !flags || !(Number.parseInt(flags, 16) & 1)) continue;
    const m = le(mask);
    if ((target & m) >>> 0 !== le(dest)) continue;
    const bits = m.toString(2).replace(/0/g, '').length;
    if (!best || bits > best.bits) best = { iface, bits };
  }
  return best?.iface;
}

/** Turns route_localnet on for the interface toward `address`; returns the interface (undefined: no route). */
export function enableRouteLocalnet(address: string): string | undefined {
  const iface = interfaceToward(address);
  if (!iface || !/^[^/\s]{1,15}$/.test(iface)) return undefined;
  try {
    // Through netns/: it keeps /proc/sys/net open, whose lookup otherwise walks a dentry per namespace on the machine.
    ensureSysctl(undefined, `net/ipv4/conf/${iface}/route_localnet`, '1');
  } catch (err) {
    throw wrapError(`enable route_localnet on ${iface}`, err);
  }
  return iface;
}
