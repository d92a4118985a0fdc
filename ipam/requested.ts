/**
 * Requested addresses (reference config.go): CNI_ARGS `IP=` (comma-separated), `args.cni.ips` and
 * `runtimeConfig.ips` (capability `ips`). Each must fall in exactly one range set, one per set, and
 * never be a gateway, the network address or an IPv4 broadcast address.
 */
import {
  CtnetError,
  ErrorCode,
  formatIp,
  type IpAddr,
  lastOf,
  type NetConf,
  networkOf,
  parseIpOrCidr,
  pickCniArgs,
  sameIp,
} from '../core/index.js';
import { type IpamConfig, rangeContains } from './config.js';

/** CNI_ARGS keys host-local reads; MAC is the bridge's (it delegates its env to us unchanged). */
const knownCniArgs = ['IP', 'MAC'] as const;

interface Requested {
  ip: IpAddr;
  source: string;
}

function collect(conf: NetConf, cniArgs: string): Requested[] {
  const out: Requested[] = [];
  const ipArg = pickCniArgs(cniArgs, knownCniArgs).get('IP');
  if (ipArg) {
    for (const item of ipArg.split(',')) {
      const text = item.trim();
      const ip = parseIpOrCidr(text);
      if (!ip) throw new CtnetError(ErrorCode.invalidEnv, `invalid CNI_ARGS IP ${JSON.stringify(text)}: not an IP address`);
      out.push({ ip, source: 'CNI_ARGS IP' });
    }
  }
  const lists: [unknown, string][] = [
    [conf.args?.cni?.ips, 'args.cni.ips'],
    [conf.runtimeConfig?.ips, 'runtimeConfig.ips'],
  ];
  for (const [list, path] of lists) {
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new CtnetError(ErrorCode.invalidConfig, `invalid network config: ${path} must be a list`);
    list.forEach((text, i) => {
      const ip = typeof text === 'string' ? parseIpOrCidr(text) : undefined;
      if (!ip) {
        throw new CtnetError(
          ErrorCode.invalidConfig,
          `invalid network config: ${path}[${i}] ${JSON.stringify(text)} is not an IP address`,
        );
      }
      out.push({ ip, source: `${path}[${i}]` });
    });
  }
  return out;
}

/** Returns the requested address per range-set index; throws code 7 for one that cannot be placed. */
export function requestedIps(cfg: IpamConfig, conf: NetConf, cniArgs: string): Map<number, IpAddr> {
  const bySet = new Map<number, IpAddr>();
  for (const { ip, source } of collect(conf, cniArgs)) {
    const text = formatIp(ip);
    const set = cfg.rangeSets.find((s) => s.ranges.some((r) => rangeContains(r, ip)));
    const fail = (why: string) =>
      new CtnetError(ErrorCode.invalidConfig, `failed to allocate requested IP ${text} (from ${source}): ${why}`);
    if (!set) throw fail('it is in no configured range');
    const range = set.ranges.find((r) => rangeContains(r, ip));
    if (set.ranges.some((r) => sameIp(r.gateway, ip))) throw fail(`it is the gateway of range set ${set.path}`);
    if (range && sameIp(networkOf(range.subnet), ip)) throw fail('it is the network address');
    if (range && ip.family === 4 && sameIp(lastOf(range.subnet), ip)) throw fail('it is the broadcast address');
    const already = bySet.get(set.index);
    if (already && !sameIp(already, ip)) throw fail(`${formatIp(already)} is already requested from range set ${set.path}`);
    bySet.set(set.index, ip);
  }
  return bySet;
}
