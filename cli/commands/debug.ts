/**
 * `ctnet debug …`: what a person reaches for when the network misbehaves. Each subcommand's code
 * lives in cli/commands/debug/<name>.ts and is imported only when that subcommand runs.
 */
import type { Command } from 'commander';
import { runDebugCni } from './debug/cni.js';
import { debugDoctor } from './debug/doctor.js';
import { debugGraph } from './debug/graph.js';
import { debugInspect } from './debug/inspect.js';
import { execIn, listNamespaces } from './debug/ns.js';
import { debugTrace } from './debug/trace.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  const debug = program.command('debug').description('inspect, trace and repair container networking');

  debug
    .command('cni')
    .description('run a network config list through its CNI plugins, like cnitool (add|del|check|gc|status)')
    .argument('<command>', 'add, del, check, gc or status')
    .argument('<network>', 'network name (searched in the network config directories) or a config file path')
    .argument('[netns]', 'network namespace path (needed for add and check)')
    .option('--args <K=V;...>', 'CNI_ARGS')
    .option(
      '--cap <name=json>',
      'capability argument, e.g. portMappings=\'[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]\'',
      collect,
      [],
    )
    .option('--ifname <name>', 'CNI_IFNAME', 'eth0')
    .option('--containerid <id>', 'CNI_CONTAINERID (default: derived from the netns path, as cnitool does)')
    .option(
      '--netconf-dir <dir>',
      'network config directory (repeatable; default $CTNET_ROOT/networks then /etc/cni/net.d)',
      collect,
      [],
    )
    .option('--cni-path <path>', 'CNI_PATH, colon-separated (default $CNI_PATH or /opt/cni/bin)')
    .option('--exec', 'always execute plugin binaries, never run ctnet plugins in-process')
    .option('--valid <id[:ifname]>', 'gc: an attachment that is still valid (repeatable; default: every cached one)', collect, [])
    .action(async (command: string, network: string, netns: string | undefined, opts) => {
      await runDebugCni(command, network, netns, opts);
    });

  const ns = debug.command('ns').description('network namespaces');
  ns.command('ls')
    .description("list network namespaces: containers, named (/run/netns) and the runner's")
    .option('--json', 'print JSON')
    .action(async (opts) => listNamespaces(opts));

  debug
    .command('exec')
    .description("run a host command inside a container's (or a netns') network namespace: debug exec web -- ss -tlnp")
    .argument('<target>', 'container name or ID, netns name, or netns path')
    .argument('<command...>', 'the command, after --')
    .action(async (target: string, command: string[]) => execIn(target, command));

  debug
    .command('inspect')
    .description('links, addresses, routes, neighbours, veth peer and bridge, published ports with rules and counters, leases')
    .argument('<target>', 'container name or ID, netns name, or netns path')
    .option('--json', 'print JSON')
    .action(async (target: string, opts) => debugInspect(target, opts));

  debug
    .command('trace')
    .description(
      "check every hop of a published port's path (or of the path to a pod on another node) and name the first broken one",
    )
    .argument('<container>', 'container name or ID')
    .argument('<port>', 'published host port (or container port), e.g. 8080 or 5353/udp; or a pod IP on another node')
    .option(
      '--from <source>',
      'world (default), an outside address (its family picks the IPv4 or IPv6 path), host, 127.0.0.1 or ::1, or a container name',
      'world',
    )
    .option('--json', 'print JSON')
    .action(async (container: string, port: string, opts) => debugTrace(container, port, opts));

  debug
    .command('doctor')
    .description('check host prerequisites and find leftovers of crashes (veths, leases, rules); --fix removes the leftovers')
    .option('--fix', 'remove the leftovers found (only those)')
    .option('--cni-path <path>', 'CNI_PATH for DELs of dead attachments without a recorded one')
    .option('--json', 'print JSON')
    .action(async (opts) => debugDoctor(opts));

  debug
    .command('graph')
    .description('the topology: bridges, veths, containers, addresses, published ports (text tree, or Graphviz with --dot)')
    .option('--dot', 'print Graphviz DOT')
    .option('--json', 'print JSON')
    .action(async (opts) => debugGraph(opts));
}
