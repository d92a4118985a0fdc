/**
 * A published port, as the portmap capability's `portMappings` entry carries it, and the one rule for when two
 * of them collide. The runner allocates with it, portmap's reservations refuse with it, the firewall writes it.
 */
import { parseIp } from './ip.js';

export const portProtocols = ['tcp', 'udp', 'sctp'] as const;
export type PortProtocol = (typeof portProtocols)[number];

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
  /** '' or absent: every host address of both families; '0.0.0.0' / '::': every address of one family; else one. */
  hostIP?: string;
}

/** Whether two host-address scopes (see PortMapping.hostIP) can receive the same packet. */
export function hostIPsOverlap(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return true;
  const x = parseIp(a);
  const y = parseIp(b);
  // Text that is no address (refused before it gets here) collides only with itself.
  if (!x || !y) return a === b;
  if (x.family !== y.family) return false;
  return x.value === 0n || y.value === 0n || x.value === y.value;
}

/** Two mappings collide when protocol and host port match and their host addresses overlap. */
export function portsConflict(
  a: Pick<PortMapping, 'protocol' | 'hostPort' | 'hostIP'>,
  b: Pick<PortMapping, 'protocol' | 'hostPort' | 'hostIP'>,
): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && hostIPsOverlap(a.hostIP, b.hostIP);
}
