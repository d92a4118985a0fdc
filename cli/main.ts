/**
 * ctnet's command-line program. Each command group lives in cli/commands/<group>.ts and is
 * loaded only when invoked, so `ctnet ps` does not pay for the debugger's imports.
 */
import { Command } from 'commander';
import { reportAndExit } from './output.js';

interface CommandGroup {
  name: string;
  summary: string;
  load: () => Promise<{ register(program: Command): void }>;
}

/** One line per command group; add a group by adding a line. */
const groups: CommandGroup[] = [
  {
    name: 'install-cni',
    summary: 'install the CNI plugin binaries into a plugin directory',
    load: () => import('./commands/install-cni.js'),
  },
];

async function main(argv: string[]): Promise<void> {
  const program = new Command('ctnet')
    .description('container networking: CNI plugins, a minimal container runner, a network debugger')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const wanted = argv[2];
  const group = groups.find((g) => g.name === wanted || (wanted !== undefined && g.name.split(' ')[0] === wanted));
  const toLoad = group ? [group] : wanted && !wanted.startsWith('-') && wanted !== 'help' ? [] : groups;
  for (const g of toLoad) (await g.load()).register(program);
  if (!group && wanted && !wanted.startsWith('-') && wanted !== 'help') {
    for (const g of groups) program.command(g.name).description(g.summary);
  }
  await program.parseAsync(argv);
}

main(process.argv).catch(reportAndExit);
