/** Removes leftovers of earlier (crashed) test runs, by name prefix, before the suite starts. */
import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../core/index.js';
import { sandboxPrefix } from './sandbox.js';

const list = await run('ip', ['netns', 'list']);
const stale = list.stdout
  .split('\n')
  .map((l) => l.split(' ')[0] ?? '')
  .filter((n) => n.startsWith(sandboxPrefix));
for (const name of stale) await run('ip', ['netns', 'del', name], { allowFailure: true });
let dirs = 0;
for (const entry of readdirSync(tmpdir())) {
  if (entry.startsWith('ctt-')) {
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    dirs++;
  }
}
if (stale.length || dirs) console.log(`sweep: removed ${stale.length} namespaces and ${dirs} directories left by earlier runs`);
