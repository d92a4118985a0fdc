import { readFileSync, writeSync } from 'node:fs';
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

/**
 * Writes `text` to fd 1 or 2 with write(2): process.stdout/stderr would build a stream (and, for a pipe, load
 * node:net) for a single write. A non-blocking descriptor that is full gets the rest through the stream; a reader
 * that has gone away gets nothing, as with the stream.
 */
function writeOut(fd: 1 | 2, text: string): void {
  const buf = Buffer.from(text);
  let written = 0;
  try {
    while (written < buf.length) written += writeSync(fd, buf, written);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
    (fd === 1 ? process.stdout : process.stderr).write(buf.subarray(written));
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
  if (outcome.stderr) writeOut(2, outcome.stderr);
  writeOut(1, outcome.stdout);
  // Every step has completed and the writes above are synchronous (logs too: log.ts uses sync
  // destinations). Exiting here skips tearing the heap down, ~8 ms of every call.
  process.exit(outcome.exitCode);
}
