/** Docker's resource flags: `--memory 64m`, `--cpus 0.5`, `--pids-limit 100`, checked for sense. */
import { availableParallelism } from 'node:os';
import { CtnetError, ErrorCode } from '../../core/index.js';

export interface Limits {
  memoryBytes?: number;
  /** CPUs as a fraction, e.g. 0.5 = half a CPU per period. */
  cpus?: number;
  pidsLimit?: number;
}

/** Docker refuses less than 6 MiB: the runtime itself would not fit. */
export const minimumMemoryBytes = 6 * 1024 * 1024;
export const cpuPeriodUs = 100_000;

const units: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseMemory(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(text.trim());
  if (!m) throw new CtnetError(ErrorCode.invalidConfig, `invalid memory limit "${text}": expected a number with b, k, m or g`);
  const bytes = Math.floor(Number(m[1]) * (units[(m[2] ?? '').toLowerCase()] ?? 1));
  if (bytes < minimumMemoryBytes) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid memory limit "${text}": the minimum allowed is 6MB`);
  }
  return bytes;
}

export function parseCpus(text: string, cpuCount = availableParallelism()): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0.01 || n > cpuCount) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid --cpus "${text}": the range of CPUs is from 0.01 to ${cpuCount}`);
  }
  return n;
}

/** Docker: 0 or a negative value means unlimited. */
export function parsePidsLimit(text: string): number | undefined {
  if (!/^-?\d+$/.test(text.trim()))
    throw new CtnetError(ErrorCode.invalidConfig, `invalid --pids-limit "${text}": not an integer`);
  const n = Number(text);
  return n > 0 ? n : undefined;
}

export function cpuQuotaUs(cpus: number): number {
  return Math.max(1000, Math.round(cpus * cpuPeriodUs));
}
