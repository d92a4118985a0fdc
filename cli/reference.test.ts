import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { Command } from 'commander';
import { renderCliReference, renderReference } from './reference.js';

const docsCli = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'cli.md');

test('docs/cli.md is what `npm run docs:cli` generates from the program now', async (t) => {
  const expected = await renderCliReference();
  const current = readFileSync(docsCli, 'utf8');
  t.true(current === expected, 'docs/cli.md is out of date: run `npm run docs:cli` and commit it');
});

test('the reference lists nested subcommands, their arguments, options and defaults', (t) => {
  const program = new Command('tool').description('a tool');
  const group = program.command('grp').description('a group');
  group
    .command('act')
    .description('does | things')
    .argument('<target>', 'what to act on')
    .option('--mode <m>', 'how', 'fast')
    .option('--many <x>', 'repeatable', (v: string, p: string[]) => [...p, v], []);
  const text = renderReference(program);
  t.regex(text, /^## tool grp act$/m);
  t.regex(text, /^tool grp act \[options\] <target>$/m);
  t.regex(text, /^\| `<target>` \| what to act on \|$/m);
  t.regex(text, /^\| `--mode <m>` \| `fast` \| how \|$/m);
  // An empty repeatable list is no default worth printing; pipes in text are escaped.
  t.regex(text, /^\| `--many <x>` \| {2}\| repeatable \|$/m);
  t.regex(text, /does \\\| things/);
  t.regex(text, /Subcommands: \[act\]\(#tool-grp-act\)\./);
});
