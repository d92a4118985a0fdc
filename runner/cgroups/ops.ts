/** What every driver does the same way on a stored record: list, kill, count OOM kills, remove. */
import { readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { hasErrno, log } from '../../core/index.js';
import type { CgroupRecord } from './manager.js';

function readPids(file: string): number[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function cgroupPids(rec: CgroupRecord): number[] {
  return [...new Set(rec.procsFiles.flatMap(readPids))];
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** SIGKILLs everything in the cgroup until it is empty (a fork bomb keeps forking; repeat). */
export function killCgroup(rec: CgroupRecord, timeoutMs = 5000): boolean {
  if (rec.driver === 'none') return true;
  const deadline = Date.now() + timeoutMs;
  for (const dir of rec.dirs) {
    try {
      writeFileSync(`${dir}/cgroup.kill`, '1');
    } catch {
      /* v1, or a kernel before 5.14: kill one by one below */
    }
  }
  for (;;) {
    const pids = cgroupPids(rec);
    if (pids.length === 0) return true;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
    if (Date.now() > deadline) return false;
    sleepMs(5);
  }
}

/** How many processes the kernel OOM-killed in this cgroup. */
export function oomKillCount(rec: CgroupRecord): number {
  if (!rec.oomFile) return 0;
  try {
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(rec.oomFile, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Kills what is left and removes the directories; already gone is success. */
export function destroyCgroup(rec: CgroupRecord): void {
  if (rec.driver === 'none') return;
  killCgroup(rec);
  for (const dir of [...rec.dirs, ...rec.parents]) {
    for (let attempt = 0; ; attempt++) {
      try {
        rmdirSync(dir);
        break;
      } catch (err) {
        if (hasErrno(err, 'ENOENT')) break;
        // A parent still used by another container stays; a leaf may need a moment after the kill.
        if (rec.parents.includes(dir) && hasErrno(err, 'ENOTEMPTY', 'EBUSY')) break;
        if (attempt < 100 && hasErrno(err, 'EBUSY')) {
          sleepMs(5);
          continue;
        }
        log.warn({ dir, err: String(err) }, 'failed to remove cgroup');
        break;
      }
    }
  }
}
