/**
 * File system calls on paths a configuration names (host-local's `dataDir`, `resolvConf`), made so
 * that they end: a call in the agent that never returns stops every other call in it.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

function errnoCode(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

/**
 * `mkdir -p` that always ends: creates `path` and its missing parents (each with `mode`), each mkdir
 * tried once. Node 20's `mkdirSync(path, { recursive: true })` never returns where mkdir(2) answers
 * ENOENT below a directory that exists (any path under /proc): it climbs to the parent, finds it, and
 * tries the child again, forever.
 */
export function makeDirs(path: string, mode = 0o755): void {
  const missing: string[] = [];
  for (let at = resolve(path); ; ) {
    try {
      if (statSync(at).isDirectory()) break;
      throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${at}'`), { code: 'ENOTDIR', path: at });
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    missing.push(at);
    const up = dirname(at);
    if (up === at) break;
    at = up;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, { mode });
    } catch (err) {
      // Made meanwhile by another caller: fine when it is a directory.
      if (errnoCode(err) !== 'EEXIST' || !statSync(dir).isDirectory()) throw err;
    }
  }
}

/**
 * The text of a regular file, or an error (code EINVAL) for anything else: opened without waiting,
 * so a FIFO or a device in its place (whose open or read would wait for a writer) cannot hang the caller.
 */
export function readRegularFile(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    if (!fstatSync(fd).isFile()) {
      throw Object.assign(new Error(`EINVAL: not a regular file, open '${path}'`), { code: 'EINVAL', path });
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
