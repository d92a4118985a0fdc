/**
 * Per-namespace sysctls. /proc/sys/net shows the namespace of the thread that opens the file, so
 * the file is opened (and read or written) while switched into the target namespace.
 *
 * Why files are opened through a directory kept open: every namespace that has looked up
 * /proc/sys/net/ipv6 (or ipv4, core, …) leaves a dentry of that name under the one /proc/sys/net
 * dentry all namespaces share, and the kernel finds the caller's among them by walking them all
 * (proc_sys_compare). With a thousand containers that walk costs ~0.5 ms per open in a namespace
 * that already has its entry, and ~3–6 ms for the first open in a new one. Below that level the
 * tree is the namespace's own. So a long-lived process keeps /proc/sys/net/<x> of its own
 * namespace open and opens files relative to it (/proc/self/fd/N/…), and writeSysctls() looks
 * each such directory up once per call, however many keys it writes under it.
 */
import { closeSync, fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { CtnetError, ErrorCode, hasErrno, wrapError } from '../core/index.js';
import { inNetns, isSwitched } from './switch.js';

/**
 * 'net.ipv4.ip_forward' or 'net/ipv4/ip_forward' → '/proc/sys/net/ipv4/ip_forward'.
 * A key with a '/' is taken as a path (needed when an interface name contains a dot, e.g.
 * 'net/ipv4/conf/eth0.100/forwarding'); otherwise dots separate the parts, as sysctl(8) does.
 */
export function sysctlPath(key: string): string {
  return `/proc/sys/${sysctlParts(key).join('/')}`;
}

function sysctlParts(key: string): string[] {
  const rel = key.includes('/') ? key.replace(/^\/+/, '') : key.replaceAll('.', '/');
  const parts = rel.split('/');
  if (!rel || parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to resolve sysctl "${key}": not a valid key`);
  }
  return parts;
}

function where(nsPath: string | undefined): string {
  return nsPath === undefined ? 'the current network namespace' : nsPath;
}

/** An open /proc/sys directory; dev and ino tell whether the descriptor still is that directory. */
interface OpenDir {
  fd: number;
  dev: number;
  ino: number;
}

/**
 * Opens the directories keys live in (the first two levels, 'net/ipv6'), each once, and gives file
 * paths relative to them. Opened while the thread is in the namespace the files belong to.
 */
class SysctlDirs {
  private readonly dirs = new Map<string, OpenDir | null>();

  /** The path to open for `parts`; through an open directory when the key is deep enough. */
  path(parts: string[]): string {
    if (parts.length < 3) return `/proc/sys/${parts.join('/')}`;
    const top = `${parts[0]}/${parts[1]}`;
    let dir = this.dirs.get(top);
    if (dir && !stillOpen(dir)) dir = undefined;
    if (dir === undefined) {
      dir = openDir(`/proc/sys/${top}`);
      this.dirs.set(top, dir);
    }
    // null: that directory is absent (IPv6 disabled at boot…): the plain path gives the caller ENOENT.
    return dir ? `/proc/self/fd/${dir.fd}/${parts.slice(2).join('/')}` : `/proc/sys/${parts.join('/')}`;
  }

  close(): void {
    for (const dir of this.dirs.values()) if (dir) closeSync(dir.fd);
    this.dirs.clear();
  }
}

function openDir(path: string): OpenDir | null {
  try {
    const fd = openSync(path, 'r');
    const st = fstatSync(fd);
    return { fd, dev: st.dev, ino: st.ino };
  } catch {
    return null;
  }
}

function stillOpen(dir: OpenDir): boolean {
  try {
    const st = fstatSync(dir.fd);
    return st.dev === dir.dev && st.ino === dir.ino;
  } catch {
    return false;
  }
}

/** The process's own namespace's directories, kept open for the life of the process. */
const ownDirs = new SysctlDirs();

/**
 * Runs `fn` in the namespace at nsPath with a way to name files there: the process's kept
 * directories when that is its own namespace, otherwise ones opened for this call and closed after.
 */
function withSysctlDirs<T>(nsPath: string | undefined, fn: (dirs: SysctlDirs) => T): T {
  return inNetns(nsPath, () => {
    if (!isSwitched()) return fn(ownDirs);
    const dirs = new SysctlDirs();
    try {
      return fn(dirs);
    } finally {
      dirs.close();
    }
  });
}

/** The value without its trailing newline, or undefined if the key does not exist there. */
export function readSysctl(nsPath: string | undefined, key: string): string | undefined {
  const parts = sysctlParts(key);
  try {
    return withSysctlDirs(nsPath, (dirs) => readFileSync(dirs.path(parts), 'utf8')).replace(/\n$/, '');
  } catch (err) {
    if (err instanceof CtnetError && err.code === ErrorCode.invalidNetns) throw err;
    if (hasErrno(err, 'ENOENT')) return undefined;
    throw wrapError(`read sysctl ${key} in ${where(nsPath)}`, err, ErrorCode.io);
  }
}

export function writeSysctl(nsPath: string | undefined, key: string, value: string): void {
  writeSysctls(nsPath, [{ key, value }]);
}

export interface SysctlSetting {
  key: string;
  value: string;
  /** A failure to write it is ignored: a key that does not exist there (IPv6 disabled, no such interface), a read-only /proc/sys. */
  bestEffort?: boolean;
}

/**
 * Writes several sysctls of one namespace in one switch, in order; each directory they share is
 * looked up once. Stops at the first failure of a setting that is not best effort.
 */
export function writeSysctls(nsPath: string | undefined, settings: readonly SysctlSetting[]): void {
  const parsed = settings.map((s) => ({ ...s, parts: sysctlParts(s.key) }));
  let current: SysctlSetting | undefined;
  try {
    withSysctlDirs(nsPath, (dirs) => {
      for (const s of parsed) {
        current = s;
        try {
          writeFileSync(dirs.path(s.parts), s.value);
        } catch (err) {
          if (!s.bestEffort) throw err;
        }
      }
    });
  } catch (err) {
    if (err instanceof CtnetError && err.code === ErrorCode.invalidNetns) throw err;
    const what = current ? `${current.key}=${current.value}` : settings.map((s) => s.key).join(', ');
    throw wrapError(`write sysctl ${what} in ${where(nsPath)}`, err, ErrorCode.io);
  }
}

/**
 * Writes `value` only when the key holds another one; true if it wrote. For keys whose write does
 * work even when nothing changes (net.ipv6.conf.all.forwarding takes the RTNL lock and walks every
 * route of the namespace on each write), and a read costs no more than a write.
 */
export function ensureSysctl(nsPath: string | undefined, key: string, value: string): boolean {
  if (readSysctl(nsPath, key) === value) return false;
  writeSysctl(nsPath, key, value);
  return true;
}
