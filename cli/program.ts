/**
 * The commander program. Each command group lives in cli/commands/<group>.ts and is loaded only
 * when invoked, so `ctnet ps` does not pay for the debugger's imports.
 */
import { Command } from 'commander';

interface CommandGroup {
  /** The top-level command names this module registers. */
  names: string[];
  summary: string;
  load: () => Promise<{ register(program: Command): void }>;
}

/** One line per command group; add a group by adding a line. */
const groups: CommandGroup[] = [
  {
    names: ['install-cni'],
    summary: 'install the CNI plugin binaries into a plugin directory',
    load: () => import('./commands/install-cni.js'),
  },
  {
    names: ['agent', 'cni-daemon', 'daemon'],
    summary: 'serve CNI calls and `ctnet run` from one resident process',
    load: () => import('./commands/agent.js'),
  },
  { names: ['network'], summary: 'manage networks', load: () => import('./commands/network.js') },
  { names: ['node'], summary: 'join hosts into one pod network', load: () => import('./commands/node.js') },
  { names: ['debug'], summary: 'inspect, trace and repair container networking', load: () => import('./commands/debug.js') },
  {
    names: ['run', 'start', 'stop', 'kill', 'rm', 'ps', 'logs', 'exec', 'inspect', 'port', 'container'],
    summary: 'run and manage containers',
    load: () => import('./commands/container.js'),
  },
  { names: ['image', 'pull'], summary: 'manage images', load: () => import('./commands/image.js') },
  { names: ['system'], summary: 'state-wide maintenance', load: () => import('./commands/system.js') },
  { names: ['completion'], summary: 'shell completion scripts', load: () => import('./commands/completion.js') },
];

export interface BuildOptions {
  /** The command about to run (argv[2]): only its group is loaded. Unset or unknown: every group. */
  command?: string | undefined;
}

/** The program with the group owning `command` registered (or all of them: help, docs:cli). */
export async function buildProgram(options: BuildOptions = {}): Promise<Command> {
  const program = new Command('ctnet')
    .description('container networking: CNI plugins, a minimal container runner, a network debugger')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const wanted = options.command;
  const group = groups.find((g) => wanted !== undefined && g.names.includes(wanted));
  // Load only the module that owns the command; help and unknown commands load them all.
  for (const g of group ? [group] : groups) (await g.load()).register(program);
  return program;
}
