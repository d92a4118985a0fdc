import { randomHex } from '../core/index.js';

/**
 * A fresh host-side veth name: prefix + 8 random hex digits ('veth1a2b3c4d'), at most 15 bytes
 * (IFNAMSIZ - 1). Random rather than derived, as the reference plugins do; callers retry on EEXIST.
 */
export function randomVethName(prefix = 'veth'): string {
  const suffix = randomHex(4);
  return `${prefix.slice(0, 15 - suffix.length)}${suffix}`;
}
