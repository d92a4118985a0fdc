/** ctnet's command-line program (entry of the dist/ctnet.cjs bundle); the commands are built in program.ts. */
import { reportAndExit } from './output.js';
import { buildProgram } from './program.js';

async function main(argv: string[]): Promise<void> {
  const program = await buildProgram({ command: argv[2] });
  await program.parseAsync(argv);
}

main(process.argv).catch(reportAndExit);
