/**
 * The IPAM operations host-local exposes, each one critical section on a network's leases in a
 * `LeaseStore`: allocate (ADD), release (DEL), verify (CHECK), collect (GC) and availability (STATUS).
 */
import {
  type CniAttachment,
  type CniIpConfig,
  CtnetError,
  ErrorCode,
  formatCidr,
  formatIp,
  type IpAddr,
  log,
  parseIp,
  parseIpOrCidr,
} from '../core/index.js';
import { type Allocation, allocateNext, allocateRequested, capacityOf, leasedIn, rangeOf } from './allocator.js';
import { describeRangeSet, type IpamConfig, type RangeSet } from './config.js';
import type { LockOptions } from './flock.js';
import { describeOwner, type LeaseOwner, leaseDirPath } from './lease-files.js';
import type { LeaseStore } from './store.js';

export interface Attachment {
  containerId: string;
  ifname: string;
}

export function toIpConfig(a: Allocation): CniIpConfig {
  return { address: formatCidr({ addr: a.ip, prefix: a.range.subnet.prefix }), gateway: formatIp(a.range.gateway) };
}

function setOf(cfg: IpamConfig, ip: IpAddr): RangeSet | undefined {
  return cfg.rangeSets.find((s) => rangeOf(s, ip) !== undefined);
}

/**
 * One address per range set for the attachment. All or nothing: a failure in a later set releases
 * what earlier sets reserved, inside the same lock, so no other call ever sees half an ADD.
 */
export async function allocateLeases(
  store: LeaseStore,
  cfg: IpamConfig,
  who: Attachment,
  requested: ReadonlyMap<number, IpAddr>,
  options: LockOptions = {},
): Promise<Allocation[]> {
  return store.update(
    cfg.dataDir,
    cfg.network,
    (dir) => {
      const held = dir.ownedBy(who.containerId, who.ifname);
      const heldIps = [...held.exact, ...held.legacy].map((n) => ({ name: n, ip: parseIp(n) }));
      const made: Allocation[] = [];
      try {
        for (const set of cfg.rangeSets) {
          const dup = heldIps.find((h) => h.ip && rangeOf(set, h.ip));
          if (dup) {
            throw new CtnetError(
              ErrorCode.exists,
              `failed to allocate for range set ${set.path}: ${dup.name} has been allocated to ${who.containerId}, duplicate allocation is not allowed`,
              { hint: `the runtime must DEL ${who.containerId} ${who.ifname} before adding it again` },
            );
          }
          const ip = requested.get(set.index);
          made.push(
            ip
              ? allocateRequested(dir, set, ip, who.containerId, who.ifname)
              : allocateNext(dir, set, who.containerId, who.ifname),
          );
        }
      } catch (err) {
        for (const a of made) dir.release(formatIp(a.ip));
        throw err;
      }
      return made;
    },
    options,
  );
}

/**
 * Releases every lease of the attachment, in any range (also ranges since removed from the config).
 * Legacy ID-only files are released when no current-format lease matched, as the reference does.
 * Nothing to release is success.
 */
export async function releaseLeases(
  store: LeaseStore,
  cfg: Pick<IpamConfig, 'dataDir' | 'network'>,
  who: Attachment,
  options: LockOptions = {},
): Promise<string[]> {
  return store.update(
    cfg.dataDir,
    cfg.network,
    (dir) => {
      const { exact, legacy } = dir.ownedBy(who.containerId, who.ifname);
      const names = exact.length > 0 ? exact : legacy;
      for (const name of names) dir.release(name);
      return names;
    },
    options,
  );
}

/**
 * CHECK: the attachment holds a lease; and every address of `expected` (the prevResult's) that lies
 * in one of our range sets is leased to it (the reference only checks that some lease exists).
 */
export async function verifyLeases(
  store: LeaseStore,
  cfg: IpamConfig,
  who: Attachment,
  expected: readonly CniIpConfig[],
  options: LockOptions = {},
): Promise<void> {
  await store.update(
    cfg.dataDir,
    cfg.network,
    (dir) => {
      const { exact, legacy } = dir.ownedBy(who.containerId, who.ifname);
      if (exact.length + legacy.length === 0) {
        throw new CtnetError(
          ErrorCode.internal,
          `failed to find a lease for ${who.containerId} ${who.ifname} in ${leaseDirPath(cfg.dataDir, cfg.network)}`,
        );
      }
      const own = new Set([...exact, ...legacy]);
      for (const c of expected) {
        const ip = parseIpOrCidr(c.address);
        if (!ip || !setOf(cfg, ip)) continue;
        const name = formatIp(ip);
        if (!own.has(name)) {
          const owner = dir.has(name) ? dir.ownerOf(name) : undefined;
          throw new CtnetError(
            ErrorCode.internal,
            `failed to verify lease of ${name} for ${who.containerId} ${who.ifname}: ${owner ? `it is leased to ${describeOwner(owner)}` : 'it is not leased'}`,
          );
        }
      }
    },
    options,
  );
}

function isValid(owner: LeaseOwner, valid: readonly CniAttachment[]): boolean {
  if (owner.ifname === undefined) return valid.some((a) => a.containerID === owner.containerId);
  return valid.some((a) => a.containerID === owner.containerId && a.ifname === owner.ifname);
}

/**
 * GC: releases every lease of this network whose attachment is not in `valid` (an ID-only legacy
 * lease stays when its container is listed with any interface). An empty list frees everything.
 * Keeps going on errors and reports them all at the end.
 */
export async function collectLeases(
  store: LeaseStore,
  cfg: IpamConfig,
  valid: readonly CniAttachment[],
  options: LockOptions = {},
): Promise<string[]> {
  return store.update(
    cfg.dataDir,
    cfg.network,
    (dir) => {
      const released: string[] = [];
      const errors: string[] = [];
      for (const [name, owner] of dir.all()) {
        if (isValid(owner, valid)) continue;
        try {
          // Re-read before deleting: what the store remembered is not the truth, and a lease is someone's address.
          const fresh = dir.ownerOf(name);
          if (fresh === undefined || isValid(fresh, valid)) continue;
          dir.release(name);
          released.push(name);
        } catch (err) {
          errors.push(`${name}: ${(err as Error).message}`);
        }
      }
      if (released.length) log.info({ network: cfg.network, released }, 'GC released leases');
      if (errors.length) {
        throw new CtnetError(ErrorCode.io, `failed to release ${errors.length} stale lease(s): ${errors.join('; ')}`);
      }
      return released;
    },
    options,
  );
}

/** STATUS: throws code 50 naming the first range set without a free address. Lists names only, no lock. */
export function checkAvailability(store: LeaseStore, cfg: IpamConfig): void {
  const names = store.names(cfg.dataDir, cfg.network);
  for (const set of cfg.rangeSets) {
    if (leasedIn(set, names) >= capacityOf(set)) {
      throw new CtnetError(
        ErrorCode.notAvailable,
        `no IP addresses available in range set ${set.path} (${describeRangeSet(set)}) of network ${cfg.network}`,
      );
    }
  }
}
