/** Backend-independent validation and normalisation of port-forward specs (defense in depth before rendering). */
import { CtnetError, ErrorCode } from '../core/index.js';
import { validateKey } from './attachment.js';
import { canonicalAddress, type Family, type ParsedCidr, parseCidr } from './cidr.js';
import { type PortForwardSpec, type PortProtocol, portProtocols } from './types.js';

export interface FamilyForward {
  protocol: PortProtocol;
  hostPort: number;
  containerPort: number;
  /** Canonical host address, or undefined for "every local address". */
  hostIP: string | undefined;
}

export interface NormalizedForwards {
  /** Per family: the container target and the mappings that apply to that family. */
  families: Partial<Record<Family, { target: ParsedCidr; forwards: FamilyForward[] }>>;
  snat: boolean;
  masqAll: boolean;
  markBit: number;
  externalSetMarkChain: string | undefined;
  conditions: Record<Family, string[]>;
}

const bad = (message: string) => new CtnetError(ErrorCode.invalidConfig, message);

export function validatePort(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw bad(`invalid ${what} ${JSON.stringify(value)}: must be an integer in 1-65535`);
  }
  return value;
}

export function validateProtocol(value: unknown): PortProtocol {
  const p = typeof value === 'string' ? value.toLowerCase() : value;
  if (!(portProtocols as readonly unknown[]).includes(p)) {
    throw bad(`invalid protocol ${JSON.stringify(value)}: must be one of ${portProtocols.join(', ')}`);
  }
  return p as PortProtocol;
}

/** '' / undefined / '0.0.0.0' / '::' → wildcard of that family (family undefined = both). */
export function parseHostIP(value: unknown): { family: Family | undefined; address: string | undefined } {
  if (value === undefined || value === '') return { family: undefined, address: undefined };
  if (typeof value !== 'string') throw bad(`invalid hostIP ${JSON.stringify(value)}: not an IP address`);
  const { family, address } = canonicalAddress(value, 'hostIP');
  if (address === '0.0.0.0' || address === '::') return { family, address: undefined };
  return { family, address };
}

/** Extra match tokens are raw rule text by design (admin config), but may not end the rule or start another. */
export function validateConditions(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((c) => typeof c !== 'string')) throw bad(`invalid ${what}: must be a list of strings`);
  for (const c of value as string[]) {
    if (/[\n\r\0;#]/.test(c)) throw bad(`invalid ${what} entry ${JSON.stringify(c)}: may not contain newlines, ";" or "#"`);
  }
  return value as string[];
}

export function normalizeForwards(spec: PortForwardSpec): NormalizedForwards {
  validateKey(spec);
  const markBit = spec.markMasqBit ?? 13;
  if (!Number.isInteger(markBit) || markBit < 0 || markBit > 31) {
    throw bad(`invalid markMasqBit ${JSON.stringify(spec.markMasqBit)}: must be an integer in 0-31`);
  }
  const ext = spec.externalSetMarkChain;
  if (ext !== undefined && !/^[A-Za-z0-9_.-]{1,28}$/.test(ext)) {
    throw bad(`invalid externalSetMarkChain ${JSON.stringify(ext)}: must be a chain name of at most 28 characters`);
  }
  const conditions = {
    4: validateConditions(spec.conditions?.[4], 'conditionsV4'),
    6: validateConditions(spec.conditions?.[6], 'conditionsV6'),
  };
  const targets: Partial<Record<Family, ParsedCidr>> = {};
  for (const text of spec.containerAddresses) {
    const p = parseCidr(text);
    targets[p.family] ??= p;
  }
  const mappings = spec.mappings.map((m) => ({
    protocol: validateProtocol(m.protocol),
    hostPort: validatePort(m.hostPort, 'hostPort'),
    containerPort: validatePort(m.containerPort, 'containerPort'),
    host: parseHostIP(m.hostIP),
  }));
  const families: NormalizedForwards['families'] = {};
  for (const family of [4, 6] as const) {
    const target = targets[family];
    if (!target) continue;
    const forwards = mappings
      .filter((m) => m.host.family === undefined || m.host.family === family)
      .map((m) => ({ protocol: m.protocol, hostPort: m.hostPort, containerPort: m.containerPort, hostIP: m.host.address }));
    if (forwards.length) families[family] = { target, forwards };
  }
  return {
    families,
    snat: spec.snat ?? true,
    masqAll: spec.masqAll ?? false,
    markBit,
    externalSetMarkChain: ext,
    conditions,
  };
}

export function markHex(bit: number): string {
  return `0x${((1 << bit) >>> 0).toString(16)}`;
}
