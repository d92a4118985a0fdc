import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CtnetError, ErrorCode } from '../../core/index.js';
import { pluginNames } from '../../plugins/index.js';

/** bin/cni next to the bundled CLI (dist/ctnet.cjs → ../bin/cni). */
function sourceDir(): string {
  return resolve(dirname(process.argv[1] ?? '.'), '..', 'bin', 'cni');
}

export function installCni(dir: string, from = sourceDir()): string[] {
  mkdirSync(dir, { recursive: true });
  const installed: string[] = [];
  for (const name of pluginNames) {
    const src = join(from, name);
    if (!existsSync(src)) {
      throw new CtnetError(ErrorCode.io, `failed to install ${name}: ${src} does not exist`, {
        hint: 'run `npm run build` first',
      });
    }
    // Copy then rename, so an orchestrator executing the old binary never sees a half-written file.
    const tmp = join(dir, `.${name}.ctnet-tmp`);
    copyFileSync(src, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, join(dir, name));
    installed.push(join(dir, name));
  }
  return installed;
}

export function register(program: Command): void {
  program
    .command('install-cni')
    .description(`install the CNI plugin binaries (${pluginNames.join(', ')}) into a plugin directory`)
    .option('--dir <dir>', 'CNI plugin directory', '/opt/cni/bin')
    .action((opts: { dir: string }) => {
      for (const file of installCni(opts.dir)) process.stdout.write(`installed ${file}\n`);
      // Said once, here: each call otherwise pays a Node start (docs/agent.md).
      process.stdout.write('calls are served faster with `ctnet agent` running in the namespace that calls them\n');
    });
}
