/**
 * Address selection in one range set (reference: backend/allocator/allocator.go), on the leases of a
 * network held under their lock: round-robin from `last_reserved_ip.<set>` + 1, wrapping across the set's
 * ranges, never handing out a gateway, a subnet's network address or an IPv4 broadcast address.
 */
import { CtnetError, ErrorCode, formatIp, type IpAddr, lastOf, networkOf, parseIp } from '../core/index.js';
import { describeRangeSet, type IpRange, type RangeSet, rangeContains } from './config.js';
import { describeOwner } from './lease-files.js';
import type { Leases } from './store.js';

/** Addresses of range `r` that are never allocated. */
function excludedIn(set: RangeSet, r: IpRange): Set<bigint> {
  const out = new Set<bigint>();
  for (const x of set.ranges) out.add(x.gateway.value);
  out.add(networkOf(r.subnet).value);
  if (r.subnet.addr.family === 4) out.add(lastOf(r.subnet).value);
  for (const v of out) if (v < r.rangeStart.value || v > r.rangeEnd.value) out.delete(v);
  return out;
}

export function rangeOf(set: RangeSet, ip: IpAddr): IpRange | undefined {
  return set.ranges.find((r) => rangeContains(r, ip));
}

export function isAllocatable(set: RangeSet, ip: IpAddr): boolean {
  const r = rangeOf(set, ip);
  return r !== undefined && !excludedIn(set, r).has(ip.value);
}

/** How many addresses the set can hand out in total. */
export function capacityOf(set: RangeSet): bigint {
  let total = 0n;
  for (const r of set.ranges) total += r.rangeEnd.value - r.rangeStart.value + 1n - BigInt(excludedIn(set, r).size);
  return total;
}

/** How many of `leaseNames` are allocatable addresses of the set (O(n) in names, no reads). */
export function leasedIn(set: RangeSet, leaseNames: Iterable<string>): bigint {
  const excluded = set.ranges.map((r) => excludedIn(set, r));
  let n = 0n;
  for (const name of leaseNames) {
    const ip = parseIp(name);
    if (!ip) continue;
    const i = set.ranges.findIndex((r) => rangeContains(r, ip));
    if (i >= 0 && !excluded[i]?.has(ip.value)) n++;
  }
  return n;
}

/** Every address of the set once, starting after `last` (or at the first rangeStart), wrapping. */
export function* roundRobin(set: RangeSet, last: IpAddr | undefined): Generator<{ ip: IpAddr; range: IpRange }> {
  const ranges = set.ranges;
  let ri = last ? ranges.findIndex((r) => rangeContains(r, last)) : -1;
  let cur: bigint;
  if (ri < 0 || !last) {
    ri = 0;
    cur = (ranges[0] as IpRange).rangeStart.value;
  } else {
    const r = ranges[ri] as IpRange;
    if (last.value === r.rangeEnd.value) {
      ri = (ri + 1) % ranges.length;
      cur = (ranges[ri] as IpRange).rangeStart.value;
    } else {
      cur = last.value + 1n;
    }
  }
  let left = 0n;
  for (const r of ranges) left += r.rangeEnd.value - r.rangeStart.value + 1n;
  for (; left > 0n; left--) {
    const r = ranges[ri] as IpRange;
    yield { ip: { family: set.family, value: cur }, range: r };
    if (cur === r.rangeEnd.value) {
      ri = (ri + 1) % ranges.length;
      cur = (ranges[ri] as IpRange).rangeStart.value;
    } else {
      cur++;
    }
  }
}

export interface Allocation {
  set: RangeSet;
  range: IpRange;
  ip: IpAddr;
}

function exhausted(set: RangeSet): CtnetError {
  return new CtnetError(
    ErrorCode.noAddressesLeft,
    `failed to allocate for range set ${set.path}: no IP addresses available in range set ${describeRangeSet(set)}`,
    { hint: 'release leases of containers that are gone (CNI GC or DEL), or widen the range' },
  );
}

/** Reserves the next free address of the set for (containerId, ifname). */
export function allocateNext(dir: Leases, set: RangeSet, containerId: string, ifname: string): Allocation {
  // The walk stops at the first free address, so it costs at most the number of taken (or excluded)
  // addresses after the cursor; only an exhausted set is walked in full.
  const excluded = new Map(set.ranges.map((r) => [r, excludedIn(set, r)]));
  const cursorText = dir.lastReserved(set.index);
  const cursor = cursorText === undefined ? undefined : parseIp(cursorText);
  for (const { ip, range } of roundRobin(set, cursor)) {
    if (excluded.get(range)?.has(ip.value)) continue;
    const name = formatIp(ip);
    if (dir.has(name)) continue;
    if (dir.reserve(name, containerId, ifname)) {
      dir.setLastReserved(set.index, name);
      return { set, range, ip };
    }
  }
  throw exhausted(set);
}

/** Reserves a specific address (already checked to be allocatable in the set). */
export function allocateRequested(dir: Leases, set: RangeSet, ip: IpAddr, containerId: string, ifname: string): Allocation {
  const range = rangeOf(set, ip);
  const name = formatIp(ip);
  if (!range) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to allocate requested IP ${name}: it is not in range set ${set.path}`);
  }
  if (!dir.reserve(name, containerId, ifname)) {
    const owner = dir.ownerOf(name);
    throw new CtnetError(
      ErrorCode.exists,
      `failed to allocate requested IP ${name}: it is already allocated${owner?.containerId ? ` to ${describeOwner(owner)}` : ''}`,
    );
  }
  dir.setLastReserved(set.index, name);
  return { set, range, ip };
}
