/**
 * CPU load for tests that must hold on a loaded machine: busy loops, one per core by default. Each is one Node
 * process that ends itself after `seconds` (so a test killed before its teardown leaves none running for long),
 * and the teardown kills it by PID.
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function startCpuHogs(t: Teardown, seconds: number, count = availableParallelism()): number[] {
  const pids: number[] = [];
  const loop = `const end = Date.now() + ${Math.round(seconds * 1000)}; while (Date.now() < end);`;
  for (let i = 0; i < count; i++) {
    const hog = spawn(process.execPath, ['-e', loop], { stdio: 'ignore' });
    if (hog.pid === undefined) continue;
    pids.push(hog.pid);
    t.teardown(() => {
      hog.kill('SIGKILL');
    });
  }
  return pids;
}
