/**
 * The commander program. Each command group lives in cli/commands/<group>.ts; only the group that
 * owns the command is registered. Every group is imported statically: in the bundle, evaluating
 * all of them costs about 2 ms of CPU (`ctnet --help`, which registers all, 45 ms against 43 ms for
 * `ctnet --version`), too little to hide the dependencies behind import().
 */
import { Command } from 'commander';
import { register as registerAgent } from './commands/agent.js';
import { register as registerCompletion } from './commands/completion.js';
import { register as registerContainer } from './commands/container.js';
import { register as registerDebug } from './commands/debug.js';
import { register as registerImage } from './commands/image.js';
import { register as registerInstallCni } from './commands/install-cni.js';
import { register as registerNetwork } from './commands/network.js';
import { register as registerNode } from './commands/node.js';
import { register as registerStats } from './commands/stats.js';
import { register as registerSystem } from './commands/system.js';

interface CommandGroup {
  /** The top-level command names this module registers. */
  names: string[];
  summary: string;
  register(program: Command): void;
}

/** One line per command group; add a group by adding a line. */
const groups: CommandGroup[] = [
  {
    names: ['install-cni'],
    summary: 'install the CNI plugin binaries into a plugin directory',
    register: registerInstallCni,
  },
  {
    names: ['agent', 'cni-daemon', 'daemon'],
    summary: 'serve CNI calls and `ctnet run` from one resident process',
    register: registerAgent,
  },
  { names: ['network'], summary: 'manage networks', register: registerNetwork },
  { names: ['node'], summary: 'join hosts into one pod network', register: registerNode },
  { names: ['debug'], summary: 'inspect, trace and repair container networking', register: registerDebug },
  {
    names: ['run', 'start', 'stop', 'kill', 'rm', 'ps', 'logs', 'exec', 'inspect', 'port', 'container'],
    summary: 'run and manage containers',
    register: registerContainer,
  },
  { names: ['image', 'pull'], summary: 'manage images', register: registerImage },
  { names: ['system'], summary: 'state-wide maintenance', register: registerSystem },
  { names: ['stats'], summary: 'container resource use', register: registerStats },
  { names: ['completion'], summary: 'shell completion scripts', register: registerCompletion },
];

export interface BuildOptions {
  /** The command about to run (argv[2]): only its group is registered. Unset or unknown: every group. */
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
  // Register only the group that owns the command; help and unknown commands get them all.
  for (const g of group ? [group] : groups) g.register(program);
  return program;
}
