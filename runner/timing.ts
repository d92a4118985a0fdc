/**
 * Phase timings for the benchmark: with CTNET_TIMING=<file>, each `run` appends one JSON line
 * of {phase: ms since the previous mark}, the first mark counting from the command's start (Node
 * startup and CLI loading, or in the agent the front's start and the hand-over). Costs
 * nothing when unset.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

interface Timer {
  file: string;
  /** performance.now() of the command's start. */
  origin: number;
  marks: [string, number][];
}

const processFile = process.env.CTNET_TIMING;
const processTimer: Timer | undefined = processFile ? { file: processFile, origin: 0, marks: [] } : undefined;
let requestTimers: AsyncLocalStorage<Timer> | undefined;

function current(): Timer | undefined {
  return requestTimers?.getStore() ?? processTimer;
}

export function mark(phase: string): void {
  current()?.marks.push([phase, performance.now()]);
}

/**
 * Runs one request of a resident process with timings of its own (its caller's CTNET_TIMING
 * file, counted from `origin`); without a file, just runs it.
 */
export async function withTimings<T>(file: string | undefined, origin: number, fn: () => Promise<T>): Promise<T> {
  if (!file) return fn();
  // Made only here: an AsyncLocalStorage in use costs every promise of the process a little.
  requestTimers ??= new AsyncLocalStorage<Timer>();
  return requestTimers.run({ file, origin, marks: [] }, fn);
}

export function flushTimings(): void {
  const timer = current();
  if (!timer || timer.marks.length === 0) return;
  const out: Record<string, number> = {};
  let prev = timer.origin;
  for (const [phase, at] of timer.marks) {
    out[phase] = Math.round((at - prev) * 100) / 100;
    prev = at;
  }
  appendFileSync(timer.file, `${JSON.stringify(out)}\n`);
  timer.marks.length = 0;
}
