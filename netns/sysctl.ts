/**
 * Per-namespace sysctls. /proc/sys/net shows the namespace of the thread that opens the file, so
 * the file is opened (and read or written) while switched into the target namespace.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { CtnetError, ErrorCode, hasErrno, wrapError } from '../core/index.js';
import { inNetns } from './switch.js';

/**
 * 'net.ipv4.ip_forward' or 'net/ipv4/ip_forward' → '/proc/sys/net/ipv4/ip_forward'.
 * A key with a '/' is taken as a path (needed when an interface name contains a dot, e.g.
 * 'net/ipv4/conf/eth0.100/forwarding'); otherwise dots separate the parts, as sysctl(8) does.
 */
export function sysctlPath(key: string): string {
  const rel = key.includes('/') ? key.replace(/^\/+/, '') : key.replaceAll('.', '/');
  if (!rel || rel.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to resolve sysctl "${key}": not a valid key`);
  }
  return `/proc/sys/${rel}`;
}

function where(nsPath: string | undefined): string {
  return nsPath === undefined ? 'the current network namespace' : nsPath;
}

/** The value without its trailing newline, or undefined if the key does not exist there. */
export function readSysctl(nsPath: string | undefined, key: string): string | undefined {
  const path = sysctlPath(key);
  try {
    return inNetns(nsPath, () => readFileSync(path, 'utf8')).replace(/\n$/, '');
  } catch (err) {
    if (err instanceof CtnetError && err.code === ErrorCode.invalidNetns) throw err;
    if (hasErrno(err, 'ENOENT')) return undefined;
    throw wrapError(`read sysctl ${key} in ${where(nsPath)}`, err, ErrorCode.io);
  }
}

export function writeSysctl(nsPath: string | undefined, key: string, value: string): void {
  const path = sysctlPath(key);
  try {
    inNetns(nsPath, () => writeFileSync(path, value));
  } catch (err) {
    if (err instanceof CtnetError && err.code === ErrorCode.invalidNetns) throw err;
    throw wrapError(`write sysctl ${key}=${value} in ${where(nsPath)}`, err, ErrorCode.io);
  }
}
