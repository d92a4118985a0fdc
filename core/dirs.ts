/**
 * `mkdir -p` that always ends. Node 20's `mkdirSync(path, { recursive: true })` never returns where
 * mkdir(2) answers ENOENT below a directory that exists (any path under /proc): it climbs to the
 * parent, finds it, and tries the child again, forever. A config-supplied path (host-local's
 * `dataDir`) must get an error instead, as from any other program.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

function errnoCode(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

/** Creates `path` and its missing parents (each with `mode`); each mkdir is tried once. */
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
