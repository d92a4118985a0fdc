/**
 * Phase timings for the benchmark: with CTNET_TIMING=<file>, each `run` appends one JSON line
 * of {phase: ms since the previous mark}, the first mark being process start (Node startup and
 * CLI loading). Costs nothing when unset.
 */
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const file = process.env.CTNET_TIMING;
const marks: [string, number][] = [];

export function mark(phase: string): void {
  if (file) marks.push([phase, performance.now()]);
}

export function flushTimings(): void {
  if (!file || marks.length === 0) return;
  const out: Record<string, number> = {};
  let prev = 0;
  for (const [phase, at] of marks) {
    out[phase] = Math.round((at - prev) * 100) / 100;
    prev = at;
  }
  appendFileSync(file, `${JSON.stringify(out)}\n`);
  marks.length = 0;
}
