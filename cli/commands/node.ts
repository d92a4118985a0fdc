/** `ctnet node …`: join hosts into one pod network (subnet leases in etcd, host-gw routes or a VXLAN overlay). */
import type { Command } from 'commander';
import { nodeDown, nodeList, nodeStatus, nodeUp } from '../../node/index.js';
import { printJson, printTable } from '../output.js';

const int = (v: string) => Number(v);

function tlsOf(opts: { etcdCafile?: string; etcdCertfile?: string; etcdKeyfile?: string }) {
  if (!opts.etcdCafile) return undefined;
  return {
    ca: opts.etcdCafile,
    ...(opts.etcdCertfile && { cert: opts.etcdCertfile }),
    ...(opts.etcdKeyfile && { key: opts.etcdKeyfile }),
  };
}

function storeOptions(cmd: Command): Command {
  return cmd
    .option('--store-prefix <key>', 'key prefix of the cluster in etcd', '/ctnet/network')
    .option('--etcd-cafile <file>', 'CA certificate (PEM) of etcd: connect with TLS')
    .option('--etcd-certfile <file>', 'client certificate (PEM) for etcd')
    .option('--etcd-keyfile <file>', 'client key (PEM) for etcd');
}

function age(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

export function register(program: Command): void {
  const node = program.command('node').description('join this host to a pod network across hosts (etcd, host-gw or VXLAN)');

  storeOptions(
    node
      .command('up')
      .description('run the node agent (foreground): lease a subnet, write the conflist, route to every other node')
      .requiredOption('--store <url>', 'etcd endpoints: etcd://HOST:2379[,HOST:2379…] (etcds:// for TLS)')
      .requiredOption('--cluster-cidr <cidr>', 'the pod network of the whole cluster, e.g. 10.244.0.0/16')
      .option('--subnet-size <n>', 'prefix length of each node subnet', int, 24)
      .option('--node-ip <ip>', "this node's address on the underlay (default: the default route's source)")
      .option('--node-name <name>', 'name of this node in the cluster (default: the hostname)')
      .option('--backend <name>', 'host-gw, vxlan, or auto (host-gw to on-link nodes, VXLAN to the others)', 'auto')
      .option(
        '--firewall <backend>',
        "iptables, nftables, or auto (nftables when it runs in-process): the node's rules and port forwards",
        'auto',
      )
      .option('--vni <n>', 'VXLAN network identifier', int, 1)
      .option('--port <n>', 'VXLAN UDP port', int, 8472)
      .option('--lease-ttl <seconds>', 'subnet lease TTL; renewed every third of it', int, 60)
      .option('--network <name>', 'name of the node network (ctnet network and conflist)', 'cluster')
      .option('--cni-conf-dir <dir>', 'where kubelet/containerd read conflists', '/etc/cni/net.d'),
  ).action(async (opts) => {
    await nodeUp(
      {
        store: opts.store,
        storePrefix: opts.storePrefix,
        tls: tlsOf(opts),
        clusterCidr: opts.clusterCidr,
        subnetSize: opts.subnetSize,
        nodeIp: opts.nodeIp,
        nodeName: opts.nodeName,
        backend: opts.backend,
        firewall: opts.firewall,
        vni: opts.vni,
        port: opts.port,
        leaseTtl: opts.leaseTtl,
        network: opts.network,
        cniConfDir: opts.cniConfDir,
      },
      ({ node: name, subnet }) => process.stdout.write(`node ${name} joined with subnet ${subnet}\n`),
    );
  });

  node
    .command('down')
    .description('leave the cluster: stop the agent, release the subnet, remove routes, VXLAN link, rules and conflists')
    .option('--force', 'also when containers are still attached to the node network')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const r = await nodeDown({ force: opts.force });
      if (opts.json) return printJson(r);
      process.stdout.write(
        `node ${r.node} left; subnet ${r.subnet} ${r.released ? 'released' : 'not released (it expires with its TTL)'}\n`,
      );
      if (r.storeError) process.stderr.write(`ctnet: warning: ${r.storeError}\n`);
    });

  storeOptions(
    node
      .command('ls')
      .alias('list')
      .description('the nodes of the cluster: subnets, addresses, backends, lease ages')
      .option('--store <url>', "etcd endpoints (default: this node's)")
      .option('--json', 'print JSON'),
  ).action(async (opts) => {
    const nodes = await nodeList({ store: opts.store, storePrefix: opts.storePrefix, tls: tlsOf(opts) });
    if (opts.json) return printJson(nodes);
    printTable(
      ['NODE', 'SUBNET', 'NODE IP', 'BACKEND', 'AGE', 'EXPIRES IN'],
      nodes.map((n) => [
        `${n.node}${n.self ? ' (this node)' : ''}`,
        n.subnet,
        n.nodeIp,
        n.backend,
        age(n.ageSeconds),
        n.ttlLeft === undefined ? '' : `${n.ttlLeft}s`,
      ]),
    );
  });

  node
    .command('status')
    .description("this node's view: its subnet, and per peer whether route, FDB and neighbour entries are programmed")
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const s = await nodeStatus();
      if (opts.json) return printJson(s);
      const yes = (v: boolean | undefined) => (v === undefined ? '-' : v ? 'yes' : 'MISSING');
      process.stdout.write(
        `node ${s.node} (${s.nodeIp}) subnet ${s.subnet} of ${s.clusterCidr}, backend ${s.backend}, network "${s.network}"\n` +
          `agent ${s.agentRunning ? 'running' : 'NOT RUNNING'}, store ${s.storeConnected ? 'connected' : 'NOT CONNECTED (data plane kept as is)'}` +
          `${s.vxlanLink ? `, VXLAN link ${s.vxlanLink}` : ''}, ${s.firewallRules} firewall rules (${s.firewall})\n\n`,
      );
      printTable(
        ['PEER', 'SUBNET', 'NODE IP', 'VIA', 'ROUTE', 'FDB', 'NEIGHBOUR', 'PROBLEM'],
        s.peers.map((p) => [p.node, p.subnet, p.nodeIp, p.mode, yes(p.route), yes(p.fdb), yes(p.neighbour), p.problem ?? '']),
      );
    });
}
