/** The only place that turns errors into exit codes and formats output for people. */
import { CommanderError } from 'commander';
import { CtnetError } from '../core/index.js';

/** Docker's exit code when the tool itself fails in `run` or `exec` (not the container). */
export const toolFailed = 125;

/** Commands whose failures exit as Docker's do: 125 for the tool, the container's status otherwise. */
const dockerExitCommands = new Set(['run', 'exec']);

/** Exits for a command's error; `command` is the one run (argv[2]): a usage error of run/exec exits 125. */
export function reportAndExit(err: unknown, command?: string): never {
  if (err instanceof CommanderError) {
    const dockerStyle = command !== undefined && dockerExitCommands.has(command);
    process.exit(err.exitCode === 0 ? 0 : dockerStyle ? toolFailed : 2);
  }
  const { text, exitCode } = errorReport(err);
  process.stderr.write(text);
  process.exit(command !== undefined && dockerExitCommands.has(command) ? toolFailed : exitCode);
}

/** A failed command's lines for stderr and its exit code (a CtnetError's code, 1 otherwise). */
export function errorReport(err: unknown, env: NodeJS.ProcessEnv = process.env): { text: string; exitCode: number } {
  const message = err instanceof Error ? err.message : String(err);
  let text = `ctnet: ${message}\n`;
  if (err instanceof CtnetError && err.hint) text += `hint: ${err.hint}\n`;
  if (env.CTNET_DEBUG && err instanceof Error && err.stack) text += `${err.stack}\n`;
  return { text, exitCode: err instanceof CtnetError && err.code > 0 && err.code < 126 ? Math.min(err.code, 125) : 1 };
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

/** How long ago `iso` was, as Docker words it ("3 minutes"). */
export function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} second${s === 1 ? '' : 's'}`;
  if (s < 3600) return `${Math.round(s / 60)} minutes`;
  if (s < 86400) return `${Math.round(s / 3600)} hours`;
  return `${Math.round(s / 86400)} days`;
}

/**
 * Runs `action` on every name, as Docker does: each success prints the name, each failure its
 * error, and the command exits 1 when any failed.
 */
export async function eachName(refs: string[], action: (ref: string) => Promise<void>, printName = true): Promise<void> {
  let failed = false;
  for (const ref of refs) {
    try {
      await action(ref);
      if (printName) process.stdout.write(`${ref}\n`);
    } catch (err) {
      failed = true;
      process.stderr.write(errorReport(err).text);
    }
  }
  if (failed) process.exitCode = 1;
}
