/**
 * Network configuration files, read the way libcni does: `*.conflist` (a list), `*.conf` and
 * `*.json` (a single plugin, wrapped into a one-plugin list). A network is found by its `name`
 * across the directories given, first directory and then file name order winning.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { CtnetError, compareVersions, ErrorCode, isSupportedVersion, type NetConf } from '../core/index.js';

export interface NetworkConfigList {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  plugins: NetConf[];
  [key: string]: unknown;
}

export interface LoadedNetwork {
  list: NetworkConfigList;
  /** The file it came from. */
  file: string;
  /** The exact bytes of the file, for the result cache. */
  raw: string;
}

const configExtensions = ['.conflist', '.conf', '.json'];

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** libcni accepts the booleans as strings too. */
function flag(v: unknown): boolean {
  return v === true || v === 'true';
}

/** Parses the text of a config file into a list; a single-plugin `.conf` becomes a one-plugin list. */
export function parseNetworkConfig(text: string, file: string): NetworkConfigList {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new CtnetError(ErrorCode.decode, `failed to parse ${file}: ${(cause as Error).message}`, { cause });
  }
  if (!isObject(raw)) throw new CtnetError(ErrorCode.decode, `failed to parse ${file}: not a JSON object`);
  if (typeof raw.name !== 'string' || !raw.name) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid network config ${file}: "name" is missing`);
  }
  const cniVersion = typeof raw.cniVersion === 'string' ? raw.cniVersion : '';
  if (Array.isArray(raw.plugins)) {
    if (raw.plugins.length === 0 || !raw.plugins.every((p) => isObject(p) && typeof p.type === 'string')) {
      throw new CtnetError(ErrorCode.invalidConfig, `invalid network config ${file}: every plugin needs a "type"`);
    }
    return {
      ...raw,
      name: raw.name,
      cniVersion,
      cniVersions: Array.isArray(raw.cniVersions) ? raw.cniVersions.filter((v): v is string => typeof v === 'string') : undefined,
      disableCheck: flag(raw.disableCheck),
      disableGC: flag(raw.disableGC),
      plugins: raw.plugins as NetConf[],
    };
  }
  if (typeof raw.type !== 'string') {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid network config ${file}: neither "plugins" nor "type"`);
  }
  return { cniVersion, name: raw.name, plugins: [raw as NetConf] };
}

/** The version to speak: the highest of cniVersion ∪ cniVersions that we implement (spec A8). */
export function negotiatedVersion(list: NetworkConfigList): string {
  const candidates = [list.cniVersion, ...(list.cniVersions ?? [])].filter(isSupportedVersion);
  if (candidates.length === 0) {
    throw new CtnetError(
      ErrorCode.incompatibleVersion,
      `failed to load network "${list.name}": no supported cniVersion in ${JSON.stringify([list.cniVersion, ...(list.cniVersions ?? [])])}`,
    );
  }
  return candidates.sort(compareVersions).at(-1) as string;
}

function configFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => configExtensions.includes(extname(n)))
    .sort()
    .map((n) => join(dir, n));
}

/** Every parseable network in `dirs`; unreadable or broken files are reported, not fatal. */
export function listNetworks(dirs: readonly string[]): { networks: LoadedNetwork[]; broken: { file: string; error: string }[] } {
  const networks: LoadedNetwork[] = [];
  const broken: { file: string; error: string }[] = [];
  const seen = new Set<string>();
  for (const dir of dirs) {
    for (const file of configFiles(dir)) {
      try {
        const raw = readFileSync(file, 'utf8');
        const list = parseNetworkConfig(raw, file);
        if (seen.has(list.name)) continue;
        seen.add(list.name);
        networks.push({ list, file, raw });
      } catch (err) {
        broken.push({ file, error: err instanceof Error ? err.message : String(err) });
      }
    }
  }
  return { networks, broken };
}

/** Finds network `name` in `dirs`; NAME may also be a path to a config file. */
export function loadNetwork(name: string, dirs: readonly string[]): LoadedNetwork {
  if (name.includes('/')) {
    let raw: string;
    try {
      raw = readFileSync(name, 'utf8');
    } catch (cause) {
      throw new CtnetError(ErrorCode.io, `failed to read network config ${name}: ${(cause as Error).message}`, { cause });
    }
    return { list: parseNetworkConfig(raw, name), file: name, raw };
  }
  const found = listNetworks(dirs).networks.find((n) => n.list.name === name);
  if (!found) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to find network "${name}" in ${dirs.join(', ')}`, {
      hint: 'list networks with `ctnet network ls`, or point --netconf-dir at the directory holding the conflist',
    });
  }
  return found;
}
