/** The portmap config, parsed and checked once: every later step works on `PortmapSettings`. */
import { join } from 'node:path';
import { CtnetError, ErrorCode } from '../../core/index.js';
import {
  type FirewallBackendName,
  type PortMapping,
  parseHostIP,
  validateConditions,
  validatePort,
  validateProtocol,
} from '../../iptables/index.js';
import { netnsCookie } from '../../netns/index.js';
import type { PortmapNetConf } from './schema.js';

/**
 * Claims live where the rules they stand for live: in memory-backed /run, so a reboot clears both.
 * CTNET_RUN_DIR moves ctnet's runtime state elsewhere (tests, nested runtimes).
 */
export function stateRoot(): string {
  return join(process.env.CTNET_RUN_DIR || '/run/ctnet', 'portmap');
}

let ownStateDir: string | undefined;

/**
 * The default state dir: one per network namespace (named by its cookie, which is never reused), since each
 * namespace has ports of its own. The namespace is the plugin's own, the host side of the attachment.
 */
export function defaultStateDir(): string {
  ownStateDir ??= join(stateRoot(), `netns-${netnsCookie()}`);
  return ownStateDir;
}

export type { PortmapNetConf } from './schema.js';

export interface PortmapSettings {
  network: string;
  mappings: PortMapping[];
  snat: boolean;
  masqAll: boolean;
  markMasqBit: number | undefined;
  externalSetMarkChain: string | undefined;
  conditionsV4: string[];
  conditionsV6: string[];
  backend: FirewallBackendName | 'auto';
  stateDir: string;
}

const bad = (message: string, hint?: string) => new CtnetError(ErrorCode.invalidConfig, message, { hint });

/** Reference rule: conditions starting with "-" or "!" are iptables syntax, anything else nft syntax. */
function conditionSyntax(list: string[]): 'iptables' | 'nftables' | undefined {
  if (!list.length) return undefined;
  return /^[-!]/.test(list[0] ?? '') ? 'iptables' : 'nftables';
}

export function parseMappings(value: unknown): PortMapping[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw bad('invalid runtimeConfig.portMappings: must be a list');
  return value.map((raw, i) => {
    const m = (raw ?? {}) as Record<string, unknown>;
    const where = `runtimeConfig.portMappings[${i}]`;
    const hostPort = validatePort(m.hostPort, `${where}.hostPort`);
    const containerPort = validatePort(m.containerPort, `${where}.containerPort`);
    const protocol = validateProtocol(m.protocol ?? 'tcp');
    let hostIP: string | undefined;
    if (m.hostIP !== undefined && m.hostIP !== '') {
      const text = String(m.hostIP).replace(/^\[(.*)\]$/, '$1');
      const parsed = parseHostIP(text);
      if (parsed.family === 6 && parsed.address === '::1') {
        throw bad(
          `invalid ${where}.hostIP "${m.hostIP}": the IPv6 loopback address cannot be forwarded to a container`,
          'the kernel has no route_localnet for IPv6, so [::1] cannot be DNATed; publish on 127.0.0.1 or on a non-loopback IPv6 address',
        );
      }
      hostIP = parsed.address ?? (parsed.family === 4 ? '0.0.0.0' : '::');
    }
    return { hostPort, containerPort, protocol, ...(hostIP !== undefined && { hostIP }) };
  });
}

export function portmapSettings(conf: PortmapNetConf): PortmapSettings {
  const conditionsV4 = validateConditions(conf.conditionsV4, 'conditionsV4');
  const conditionsV6 = validateConditions(conf.conditionsV6, 'conditionsV6');
  if (conf.markMasqBit !== undefined && conf.externalSetMarkChain !== undefined) {
    throw bad('invalid network config: "markMasqBit" and "externalSetMarkChain" cannot both be set');
  }
  const iptablesOnly = [
    conf.markMasqBit !== undefined && 'markMasqBit',
    conf.externalSetMarkChain !== undefined && 'externalSetMarkChain',
    ...[conditionsV4, conditionsV6].map(
      (c, i) => conditionSyntax(c) === 'iptables' && `conditionsV${i ? 6 : 4} (iptables syntax)`,
    ),
  ].filter(Boolean);
  const nftOnly = [conditionsV4, conditionsV6]
    .map((c, i) => conditionSyntax(c) === 'nftables' && `conditionsV${i ? 6 : 4} (nft syntax)`)
    .filter(Boolean);
  let backend: PortmapSettings['backend'] = conf.backend ?? 'auto';
  if (backend === 'auto' && iptablesOnly.length) backend = 'iptables';
  else if (backend === 'auto' && nftOnly.length) backend = 'nftables';
  if (backend === 'nftables' && iptablesOnly.length) {
    throw bad(`invalid network config: ${iptablesOnly.join(', ')} apply to the iptables backend only`);
  }
  if (backend === 'iptables' && nftOnly.length) {
    throw bad(`invalid network config: ${nftOnly.join(', ')} apply to the nftables backend only`);
  }
  return {
    network: conf.name,
    mappings: parseMappings(conf.runtimeConfig?.portMappings),
    snat: conf.snat ?? true,
    masqAll: conf.masqAll ?? false,
    markMasqBit: conf.markMasqBit,
    externalSetMarkChain: conf.externalSetMarkChain,
    conditionsV4,
    conditionsV6,
    backend,
    stateDir: conf.stateDir || defaultStateDir(),
  };
}
