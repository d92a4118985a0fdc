import { readFileSync } from 'node:fs';
import { DefaultExecutor } from './invoke.js';
import type { PluginRegistry } from './plugin.js';
import { handle } from './skel.js';

function readStdin(command: string | undefined): string {
  if (command === undefined || command === '') return '';
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/** The process side of skel: env and stdin in, result or error JSON on stdout, exit code. */
export async function runPluginMain(registry: PluginRegistry, type: string): Promise<void> {
  const load = registry[type];
  if (!load) {
    process.stderr.write(`ctnet: unknown CNI plugin "${type}" (known: ${Object.keys(registry).join(', ')})\n`);
    process.exitCode = 1;
    return;
  }
  const vars = process.env;
  const stdin = readStdin(vars.CNI_COMMAND);
  const outcome = await handle(await load(), vars, stdin, new DefaultExecutor(registry));
  if (outcome.stderr) process.stderr.write(outcome.stderr);
  process.stdout.write(outcome.stdout);
  // Every step has completed and stdout/stderr writes to pipes and files are synchronous on Linux
  // (logs too: log.ts uses sync destinations). Exiting here skips tearing the heap down, ~8 ms
  // of every call.
  process.exit(outcome.exitCode);
}
