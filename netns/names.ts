import { closeSync, openSync, readSync } from 'node:fs';

/**
 * A fresh host-side veth name: prefix + 8 random hex digits ('veth1a2b3c4d'), at most 15 bytes
 * (IFNAMSIZ - 1). Random rather than derived, as the reference plugins do; callers retry on EEXIST.
 */
export function randomVethName(prefix = 'veth'): string {
  const suffix = randomHex(4);
  return `${prefix.slice(0, 15 - suffix.length)}${suffix}`;
}

/** Random bytes from the kernel without node:crypto (its load initialises OpenSSL: ~5 ms per plugin call). */
function randomHex(bytes: number): string {
  const buf = Buffer.alloc(bytes);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, buf);
  } finally {
    closeSync(fd);
  }
  return buf.toString('hex');
}
