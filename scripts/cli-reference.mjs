#!/usr/bin/env node
/**
 * Writes docs/cli.md from the CLI's commander program (cli/reference.ts renders it), so the
 * reference never drifts from the code. Runs on the TypeScript sources: `npm run docs:cli`
 * (node --import tsx). `--check` writes nothing and exits 1 when docs/cli.md is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCliReference } from '../cli/reference.ts';

const target = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'docs', 'cli.md');
const text = await renderCliReference();

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    /* missing: out of date */
  }
  if (current !== text) {
    process.stderr.write('docs/cli.md is out of date: run `npm run docs:cli`\n');
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
  process.stderr.write(`wrote ${target}\n`);
}
