/** The only place that turns errors into exit codes and formats output for people. */
import { CommanderError } from 'commander';
import { CtnetError } from '../core/index.js';

export function reportAndExit(err: unknown): never {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`ctnet: ${message}\n`);
  if (err instanceof CtnetError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  if (process.env.CTNET_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(err instanceof CtnetError && err.code > 0 && err.code < 126 ? Math.min(err.code, 125) : 1);
}

/** Prints rows as an aligned table (the default for read commands; --json prints JSON instead). */
export function printTable(headers: string[], rows: (string | number | undefined)[][]): void {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === undefined ? '' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  for (const r of cells) {
    process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i] ?? 0))).join('   ')}\n`);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
