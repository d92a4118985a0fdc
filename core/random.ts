/**
 * Random and hash helpers that avoid node:crypto: loading it initialises OpenSSL, ~5 ms of every
 * plugin call and CLI command that would otherwise not need it.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/** `bytes` random bytes from the kernel, as hex. */
export function randomHex(bytes: number): string {
  const buf = Buffer.alloc(bytes);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, buf);
  } finally {
    closeSync(fd);
  }
  return buf.toString('hex');
}

/** SHA-256 of a string, as hex. */
export function sha256Hex(text: string): string {
  return bytesToHex(sha256(utf8ToBytes(text)));
}
