/** `ctnet network …`: docker-network-like management of ctnet's CNI networks. */
import type { Command } from 'commander';
import {
  connectCommand,
  createNetwork,
  disconnectCommand,
  inspectNetworks,
  listNetworksCommand,
  pruneNetworks,
  removeNetworks,
} from './network/actions.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  const network = program.command('network').description('manage networks (conflists in $CTNET_ROOT/networks)');

  network
    .command('create')
    .description('create a network: writes a bridge + host-local + portmap conflist')
    .argument('<name>')
    .option(
      '--subnet <cidr>',
      'subnet (repeatable: one IPv4, one IPv6 with --ipv6); default: a free /24 from 10.90.0.0/15',
      collect,
      [],
    )
    .option('--gateway <ip>', 'gateway per subnet (repeatable); default: the first address', collect, [])
    .option('--ip-range <cidr>', 'allocate container addresses from this part of the subnet (repeatable)', collect, [])
    .option('--ipv6', 'enable IPv6 (a ULA /64 unless an IPv6 --subnet is given)')
    .option('--internal', 'no gateway, no route out, no port publishing')
    .option('--mtu <n>', 'MTU of the bridge and the veths', (v) => Number(v))
    .option(
      '-o, --opt <key=value>',
      'driver option: bridge, mtu, ipMasq, hairpin, isolate, firewall (iptables|nftables), cniVersion (docker names accepted)',
      collect,
      [],
    )
    .action(async (name: string, opts) => createNetwork(name, opts));

  network
    .command('ls')
    .alias('list')
    .description('list networks')
    .option('--json', 'print JSON')
    .option('-q, --quiet', 'print names only')
    .action(async (opts) => listNetworksCommand(opts));

  network
    .command('inspect')
    .description('show a network: config, bridge, attached containers and their addresses')
    .argument('<name...>')
    .option('--json', 'print JSON')
    .action(async (names: string[], opts) => inspectNetworks(names, opts));

  network
    .command('rm')
    .alias('remove')
    .description('remove networks (refused while containers are attached)')
    .argument('<name...>')
    .action(async (names: string[]) => removeNetworks(names));

  network
    .command('prune')
    .description('remove every network created by `ctnet network create` that has no container attached')
    .action(async () => pruneNetworks());

  network
    .command('connect')
    .description('attach a running container to another network (a new interface eth1, eth2, …)')
    .argument('<network>')
    .argument('<container>')
    .action(async (net: string, ctr: string) => connectCommand(net, ctr));

  network
    .command('disconnect')
    .description('detach a container from a network it was connected to')
    .argument('<network>')
    .argument('<container>')
    .action(async (net: string, ctr: string) => disconnectCommand(net, ctr));
}
