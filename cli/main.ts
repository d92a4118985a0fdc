/** ctnet's command-line program (entry of the dist/ctnet.cjs bundle); the commands are built in program.ts. */
import { reportAndExit } from './output.js';
import { buildProgram } from './program.js';

async function main(argv: string[]): Promise<void> {
  const program = await buildProgram({ command: argv[2] });
  await program.parseAsync(argv);
}

// `ctnet … | head` closes the pipe early: stop quietly, as other command-line tools do, instead of a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv).catch((err: unknown) => reportAndExit(err, process.argv[2]));
