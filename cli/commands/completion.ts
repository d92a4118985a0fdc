/** `ctnet completion bash|zsh|fish`: the shell's completion script, from the program itself. */
import { Argument, type Command } from 'commander';
import * as c from '../completion.js';

export function register(program: Command): void {
  program
    .command('completion')
    .description(
      'print the shell completion script (bash: source <(ctnet completion bash); fish: ctnet completion fish | source)',
    )
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'fish']))
    .action(async (shell: string) => {
      // lazy: program.ts registers this command, and the script needs the whole program: a static import would
      // be a cycle (cost is not the reason).
      const { buildProgram } = await import('../program.js');
      const render = { bash: c.bashCompletion, zsh: c.zshCompletion, fish: c.fishCompletion }[shell as 'bash' | 'zsh' | 'fish'];
      // Every command group, not only the one this invocation loaded.
      process.stdout.write(render(c.commandTree(await buildProgram())));
    });
}
