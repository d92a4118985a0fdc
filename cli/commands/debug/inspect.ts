/** `ctnet debug inspect <container | netns>`: one container's network, every layer, in one place. */
import { inspectContainer } from '../../../debug/index.js';
import { ctnetPaths } from '../../../network/index.js';
import { resolveTarget } from '../../../runner/index.js';
import { printJson, printTable } from '../../output.js';

function heading(text: string): void {
  process.stdout.write(`\n${text}\n`);
}

export async function debugInspect(target: string, opts: { json?: boolean }): Promise<void> {
  const paths = ctnetPaths();
  const report = await inspectContainer(resolveTarget(target, paths), paths);
  if (opts.json) return printJson(report);
  const who = report.name && report.name !== report.id ? `${report.name} (${report.id.slice(0, 12)})` : report.id;
  process.stdout.write(
    `Container: ${who}${report.status ? `  status ${report.status}` : ''}${report.pid ? `  pid ${report.pid}` : ''}\n`,
  );
  process.stdout.write(`Netns:     ${report.netns}\n`);

  heading('LINKS');
  printTable(
    ['NAME', 'KIND', 'STATE', 'MTU', 'ADDRESSES', 'HOST PEER', 'BRIDGE'],
    report.links.map((l) => [
      l.name,
      l.kind,
      l.up ? l.state : 'DOWN',
      l.mtu,
      l.addresses.join(',') || '-',
      l.peer ? `${l.peer.name} (${l.peer.up ? 'up' : 'down'})` : '-',
      l.peer?.master ? `${l.peer.master}${l.peer.masterUp === false ? ' (down)' : ''}` : l.peer ? 'not enslaved' : '-',
    ]),
  );

  heading('ROUTES');
  printTable(
    ['DESTINATION', 'GATEWAY', 'DEV', 'SOURCE'],
    report.routes.map((r) => [r.dst, r.gateway ?? '-', r.dev ?? '-', r.prefsrc ?? '-']),
  );

  heading('NEIGHBOURS');
  if (report.neighbours.length === 0) process.stdout.write('none\n');
  else
    printTable(
      ['ADDRESS', 'DEV', 'MAC', 'STATE'],
      report.neighbours.map((n) => [n.dst, n.dev, n.lladdr ?? '-', (n.state ?? []).join(',')]),
    );

  heading('PUBLISHED PORTS');
  if (report.ports.length === 0) process.stdout.write('none\n');
  else {
    printTable(
      ['HOST', 'CONTAINER', 'PROTO', 'RULES', 'PACKETS'],
      report.ports.map((p) => [
        `${p.hostIP ?? '*'}:${p.hostPort}`,
        p.containerPort,
        p.protocol,
        p.rules.length ? p.rules.map((r) => `${r.table}/${r.chain}#${r.position}`).join(' ') : 'MISSING',
        p.rules.reduce((n, r) => n + r.packets, 0),
      ]),
    );
  }

  heading('FIREWALL RULES FOR ITS ADDRESSES');
  if (report.rules.length === 0) process.stdout.write('none\n');
  else
    printTable(
      ['FAMILY', 'TABLE', 'CHAIN', '#', 'PACKETS', 'BYTES', 'RULE'],
      report.rules.map((r) => [
        r.family === 'inet' ? 'inet' : `ipv${r.family}`,
        r.table,
        r.chain,
        r.position,
        r.packets,
        r.bytes,
        r.rule,
      ]),
    );

  heading('IPAM LEASES');
  if (report.leases.length === 0) process.stdout.write('none\n');
  else
    printTable(
      ['NETWORK', 'ADDRESS', 'IFNAME'],
      report.leases.map((l) => [l.network, l.ip, l.ifname]),
    );
}
