/** `ctnet system prune`: remove every stopped container (and release anything a crash left). */
import type { Command } from 'commander';
import * as r from '../../runner/index.js';

export function register(program: Command): void {
  const system = program.command('system').description('state-wide maintenance');
  system
    .command('prune')
    .description('remove all stopped containers')
    .option('-f, --force', 'do not ask (there is no prompt; accepted for Docker compatibility)')
    .action(async () => {
      const removed = await r.pruneContainers(r.defaultContext());
      for (const rec of removed) process.stdout.write(`${rec.config.id}\n`);
      process.stdout.write(`Deleted Containers: ${removed.length}\n`);
    });
}
