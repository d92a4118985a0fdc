/** Supported spec versions and conversion of results between them (spec §5, types/100, 040). */
import { CtnetError, ErrorCode } from '../errors.js';
import { resultFields } from './netconf.js';
import type { CniDns, CniInterface, CniIpConfig, CniResult, CniRoute } from './types.js';

export const supportedVersions = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const latestVersion = '1.1.0';

export function isSupportedVersion(v: unknown): v is string {
  return typeof v === 'string' && (supportedVersions as readonly string[]).includes(v);
}

/** Numeric comparison of dotted versions: negative if a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function requireSupportedVersion(v: unknown): string {
  if (v === undefined || v === null || v === '') {
    throw new CtnetError(ErrorCode.incompatibleVersion, 'cniVersion is missing from the network config', {
      details: `plugin supports [${supportedVersions.join(' ')}]`,
    });
  }
  if (!isSupportedVersion(v)) {
    throw new CtnetError(ErrorCode.incompatibleVersion, `incompatible CNI versions: config is "${String(v)}"`, {
      details: `config is "${String(v)}", plugin supports [${supportedVersions.join(' ')}]`,
    });
  }
  return v;
}

function familyOf(cidr: string): '4' | '6' {
  return cidr.includes(':') ? '6' : '4';
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function decodeError(what: string): CtnetError {
  return new CtnetError(ErrorCode.decode, `failed to decode result: ${what}`);
}

/** Keys matched as the reference decodes them (case-insensitively, null as absent), types checked. */
function decodeResult(input: unknown): Record<string, unknown> {
  if (!isObject(input)) throw decodeError('not a JSON object');
  try {
    return resultFields.decode(input, 'result') as Record<string, unknown>;
  } catch (err) {
    throw decodeError((err as Error).message.replace(/^invalid network config: /, ''));
  }
}

/**
 * Parses a result of any supported version (and the 0.1/0.2 shape) into the internal 1.1.0 shape.
 * A result that names a version no spec defines is refused: its shape cannot be known.
 */
export function parseResult(input: unknown, assumedVersion: string): CniResult {
  const raw = decodeResult(input);
  if (typeof raw.cniVersion === 'string' && raw.cniVersion && !/^0\.[12]\.0$/.test(raw.cniVersion)) {
    if (!isSupportedVersion(raw.cniVersion)) {
      throw new CtnetError(
        ErrorCode.incompatibleVersion,
        `failed to decode result: cniVersion "${raw.cniVersion}" is not supported`,
        {
          details: `supported versions: ${supportedVersions.join(', ')}`,
        },
      );
    }
  }
  const version = typeof raw.cniVersion === 'string' && raw.cniVersion ? raw.cniVersion : assumedVersion;
  if ('ip4' in raw || 'ip6' in raw) return parseLegacyResult(raw);
  const out: CniResult = { cniVersion: latestVersion };
  // 0.3.0 named the list `ip` by mistake.
  const ipList = raw.ips ?? (version === '0.3.0' ? raw.ip : undefined);
  if (raw.interfaces !== undefined) {
    if (!Array.isArray(raw.interfaces)) throw decodeError('interfaces is not a list');
    out.interfaces = raw.interfaces.map((i): CniInterface => {
      if (!isObject(i) || typeof i.name !== 'string') throw decodeError('interface without a name');
      const iface: CniInterface = { name: i.name };
      for (const k of ['mac', 'sandbox', 'socketPath', 'pciID'] as const) if (typeof i[k] === 'string') iface[k] = i[k];
      if (typeof i.mtu === 'number') iface.mtu = i.mtu;
      return iface;
    });
  }
  if (ipList !== undefined) {
    if (!Array.isArray(ipList)) throw decodeError('ips is not a list');
    out.ips = ipList.map((ip): CniIpConfig => {
      if (!isObject(ip) || typeof ip.address !== 'string') throw decodeError('ip entry without an address');
      const c: CniIpConfig = { address: ip.address };
      if (typeof ip.gateway === 'string') c.gateway = ip.gateway;
      if (typeof ip.interface === 'number') c.interface = ip.interface;
      return c;
    });
  }
  if (raw.routes !== undefined) out.routes = parseRoutes(raw.routes);
  if (isObject(raw.dns)) out.dns = parseDns(raw.dns);
  return out;
}

function parseRoutes(routes: unknown): CniRoute[] {
  if (!Array.isArray(routes)) throw decodeError('routes is not a list');
  return routes.map((r): CniRoute => {
    if (!isObject(r) || typeof r.dst !== 'string') throw decodeError('route without a dst');
    const route: CniRoute = { dst: r.dst };
    if (typeof r.gw === 'string') route.gw = r.gw;
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) if (typeof r[k] === 'number') route[k] = r[k];
    return route;
  });
}

function parseDns(d: Record<string, unknown>): CniDns {
  const dns: CniDns = {};
  const list = (x: unknown) => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : undefined);
  const ns = list(d.nameservers);
  if (ns?.length) dns.nameservers = ns;
  if (typeof d.domain === 'string' && d.domain) dns.domain = d.domain;
  const search = list(d.search);
  if (search?.length) dns.search = search;
  const options = list(d.options);
  if (options?.length) dns.options = options;
  return dns;
}

function parseLegacyResult(raw: Record<string, unknown>): CniResult {
  const out: CniResult = { cniVersion: latestVersion, ips: [], routes: [] };
  for (const key of ['ip4', 'ip6'] as const) {
    const block = raw[key];
    if (!isObject(block)) continue;
    if (typeof block.ip !== 'string') throw decodeError(`${key} without ip`);
    const ip: CniIpConfig = { address: block.ip };
    if (typeof block.gateway === 'string') ip.gateway = block.gateway;
    out.ips?.push(ip);
    if (block.routes !== undefined) out.routes?.push(...parseRoutes(block.routes));
  }
  if (isObject(raw.dns)) out.dns = parseDns(raw.dns);
  return out;
}

function hasDns(dns: CniDns | undefined): dns is CniDns {
  return !!dns && Object.keys(dns).length > 0;
}

/** Renders an internal result in the requested spec version, as the JSON object to print. */
export function formatResult(result: CniResult, version: string): Record<string, unknown> {
  if (compareVersions(version, '1.0.0') >= 0) {
    const out: Record<string, unknown> = { cniVersion: version };
    if (result.interfaces?.length) out.interfaces = result.interfaces.map((i) => ({ ...i }));
    if (result.ips?.length) out.ips = result.ips.map((i) => ({ ...i }));
    if (result.routes?.length) out.routes = result.routes.map((r) => ({ ...r }));
    if (hasDns(result.dns)) out.dns = { ...result.dns };
    return out;
  }
  // 0.3.0 / 0.3.1 / 0.4.0: `version` on each ip, interfaces limited to name/mac/sandbox.
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces?.length) {
    out.interfaces = result.interfaces.map((i) => {
      const iface: Record<string, string> = { name: i.name };
      if (i.mac) iface.mac = i.mac;
      if (i.sandbox) iface.sandbox = i.sandbox;
      return iface;
    });
  }
  if (result.ips?.length) {
    out.ips = result.ips.map((ip) => {
      const o: Record<string, unknown> = { version: familyOf(ip.address), address: ip.address };
      if (ip.gateway) o.gateway = ip.gateway;
      if (ip.interface !== undefined) o.interface = ip.interface;
      return o;
    });
  }
  if (result.routes?.length) out.routes = result.routes.map((r) => ({ ...r }));
  out.dns = hasDns(result.dns) ? { ...result.dns } : {};
  return out;
}
