/** The read commands: debug inspect, graph, ns ls and exec, on a container attached through debug cni. */
import test from 'ava';
import { ctnet } from './debug-cli.js';
import { createNetns, createSandbox, netnsPath, referenceCniDir } from './sandbox.js';

test('inspect, graph (tree and DOT), ns ls and exec show one container consistently', async (t) => {
  const sb = await createSandbox(t);
  const ctr = await createNetns(t, 'v');
  t.is(
    (await ctnet(sb.host, sb.dir, ['network', 'create', 'views', '--subnet', '10.75.0.0/24', '-o', 'cniVersion=1.0.0'])).code,
    0,
  );
  t.is((await ctnet(sb.host, sb.dir, ['network', 'create', 'empty', '--subnet', '10.76.0.0/24'])).code, 0);
  const add = await ctnet(sb.host, sb.dir, [
    'debug',
    'cni',
    'add',
    'views',
    netnsPath(ctr),
    '--containerid',
    'viewer',
    '--cni-path',
    referenceCniDir,
    '--cap',
    'portMappings=[{"hostPort":18084,"containerPort":80,"protocol":"tcp"}]',
  ]);
  t.is(add.code, 0, add.stderr);
  const hostVeth = (add.json as { interfaces: { name: string; sandbox?: string }[] }).interfaces.find((i) =>
    i.name.startsWith('veth'),
  )?.name as string;
  t.teardown(async () => {
    await ctnet(sb.host, sb.dir, [
      'debug',
      'cni',
      'del',
      'views',
      netnsPath(ctr),
      '--containerid',
      'viewer',
      '--cni-path',
      referenceCniDir,
    ]);
  });

  const inspect = await ctnet(sb.host, sb.dir, ['debug', 'inspect', 'viewer', '--json']);
  t.is(inspect.code, 0, inspect.stderr);
  const report = inspect.json as {
    links: { name: string; addresses: string[]; peer?: { name: string; master?: string } }[];
    ports: { hostPort: number; rules: { chain: string }[] }[];
    leases: { network: string; ip: string }[];
    routes: { dst: string; gateway?: string }[];
  };
  const eth0 = report.links.find((l) => l.name === 'eth0');
  t.true(eth0?.addresses.includes('10.75.0.2/24'));
  t.is(eth0?.peer?.name, hostVeth);
  t.regex(eth0?.peer?.master ?? '', /^ctbr-/);
  t.is(report.ports[0]?.hostPort, 18084);
  t.true((report.ports[0]?.rules.length ?? 0) > 0, 'the DNAT rule is found with the port');
  t.deepEqual(report.leases, [{ network: 'views', ip: '10.75.0.2', containerId: 'viewer', ifname: 'eth0' }]);
  t.true(report.routes.some((r) => r.dst === '0.0.0.0/0' && r.gateway === '10.75.0.1'));
  const human = await ctnet(sb.host, sb.dir, ['debug', 'inspect', netnsPath(ctr)]);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, /^LINKS\nNAME\s+KIND\s+STATE/m);
  t.regex(human.stdout, /^\*:18084\s+80\s+tcp\s+nat\/CNI-DN-\S+#\d+\s+\d+$/m);

  const tree = await ctnet(sb.host, sb.dir, ['debug', 'graph']);
  t.is(tree.code, 0, tree.stderr);
  t.regex(tree.stdout, /^host$/m);
  t.regex(tree.stdout, new RegExp(`^│   └── ${hostVeth} up ── viewer eth0 10\\.75\\.0\\.2/24  ports \\*:18084->80/tcp$`, 'm'));
  t.regex(tree.stdout, /ctbr-\S+ {2}bridge not created yet {2}- {2}network empty/);
  const dot = await ctnet(sb.host, sb.dir, ['debug', 'graph', '--dot']);
  t.regex(dot.stdout, /^digraph ctnet \{/);
  t.regex(dot.stdout, new RegExp(`"veth:${hostVeth}" -> "ctr:viewer";`));

  const ns = await ctnet(sb.host, sb.dir, ['debug', 'ns', 'ls', '--json']);
  t.is(ns.code, 0, ns.stderr);
  const row = (ns.json as { path: string; container?: string; addresses: string[] }[]).find((r) => r.container === 'viewer');
  t.is(row?.path, netnsPath(ctr));
  t.deepEqual(row?.addresses, ['10.75.0.2/24']);

  const exec = await ctnet(sb.host, sb.dir, ['debug', 'exec', 'viewer', '--', 'ip', '-br', 'addr', 'show', 'eth0']);
  t.is(exec.code, 0, exec.stderr);
  t.regex(exec.stdout, /^eth0@\S+\s+UP\s+10\.75\.0\.2\/24/);
  const failing = await ctnet(sb.host, sb.dir, ['debug', 'exec', 'viewer', '--', 'sh', '-c', 'exit 7']);
  t.is(failing.code, 7, "the command's exit status is passed on");
  const unknown = await ctnet(sb.host, sb.dir, ['debug', 'inspect', 'nobody']);
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /^ctnet: no such container or network namespace: nobody$/m);
});
