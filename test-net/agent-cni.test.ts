/**
 * CNI calls through `ctnet agent` and the shim bin/cni/<type>: with an agent in the sandbox host
 * namespace the shim's calls are served by it (its debug log says so) with the same results and
 * errors as the Node plugins give; callers it must not serve (not root, another network namespace)
 * get the Node plugin; one agent per namespace; --idle-exit; `debug doctor` reports it.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { bridgeConf, ctnet, startAgent } from './agent-helpers.js';
import { testEnv } from './debug-cli.js';
import { cniBinDir, createNetns, createSandbox, netnsPath, nsRun, repoRoot, runPlugin } from './sandbox.js';

const nodePlugins = join(repoRoot, 'bin', 'cni-node');

test('an agent in the host namespace serves ADD, CHECK and DEL with the plugins’ results', async (t) => {
  const sb = await createSandbox(t);
  const agent = await startAgent(t, sb.host, sb.dir);
  const ctr = await createNetns(t, 'c');
  const dataDir = join(sb.dir, 'ipam');
  const conf = bridgeConf(dataDir);
  const call = { containerId: 'ctr-agent-1', netns: netnsPath(ctr), ifname: 'eth0' };

  const add = await runPlugin(sb.host, join(cniBinDir, 'bridge'), { command: 'ADD', ...call }, conf);
  t.is(add.exitCode, 0, add.stdout + add.stderr);
  const ips = add.json?.ips as { address: string }[];
  t.regex(ips[0]?.address ?? '', /^10\.77\.0\.\d+\/24$/);
  const addr = await nsRun(ctr, 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'eth0']);
  t.true(addr.stdout.includes(ips[0]?.address ?? 'none'), 'the container has the address the result names');
  t.true(
    readdirSync(join(dataDir, 'agentnet')).some((f) => f.startsWith('10.77.0.')),
    'a lease is on disk',
  );

  const check = await runPlugin(
    sb.host,
    join(cniBinDir, 'bridge'),
    { command: 'CHECK', ...call },
    { ...conf, prevResult: add.json },
  );
  t.is(check.exitCode, 0, check.stdout);
  const del = await runPlugin(sb.host, join(cniBinDir, 'bridge'), { command: 'DEL', ...call }, { ...conf, prevResult: add.json });
  t.is(del.exitCode, 0, del.stdout);
  t.false(
    readdirSync(join(dataDir, 'agentnet')).some((f) => f.startsWith('10.77.0.')),
    'DEL released the lease',
  );
  const links = await nsRun(ctr, 'ip', ['-o', 'link', 'show', 'dev', 'eth0'], { allowFailure: true });
  t.not(links.code, 0, 'DEL removed the container interface');

  const served = agent.entries('CNI call served').filter((e) => e.type === 'bridge');
  t.deepEqual(
    served.map((e) => e.command),
    ['ADD', 'CHECK', 'DEL'],
  );
});

test('through the agent a bad configuration gives the same CNI error as the Node plugin', async (t) => {
  const sb = await createSandbox(t);
  const agent = await startAgent(t, sb.host, sb.dir);
  const ctr = await createNetns(t, 'c');
  const conf = { ...bridgeConf(join(sb.dir, 'ipam')), mtu: -5 };
  const call = { command: 'ADD' as const, containerId: 'ctr-agent-2', netns: netnsPath(ctr), ifname: 'eth0' };
  const viaAgent = await runPlugin(sb.host, join(cniBinDir, 'bridge'), call, conf);
  const direct = await runPlugin(sb.host, join(nodePlugins, 'bridge'), call, conf);
  t.is(viaAgent.exitCode, 1);
  t.deepEqual(viaAgent.json, direct.json);
  t.is(typeof viaAgent.json?.code, 'number');
  t.is(agent.entries('CNI call served').length, 1, 'the agent answered the call');
});

test('callers the agent must not serve run the Node plugin: another user, another network namespace', async (t) => {
  const sb = await createSandbox(t);
  const agent = await startAgent(t, sb.host, sb.dir);
  const other = await createNetns(t, 'o');
  const version = { cniVersion: '1.0.0', name: 'x', type: 'bridge' };

  const asNobody = await nsRun(
    sb.host,
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', join(cniBinDir, 'bridge')],
    { input: JSON.stringify(version), env: { PATH: process.env.PATH, CNI_COMMAND: 'VERSION' }, allowFailure: true },
  );
  t.is(asNobody.code, 0, asNobody.stderr);
  t.deepEqual(JSON.parse(asNobody.stdout).supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  const declined = agent.entries('CNI call declined');
  t.is(declined.length, 1);
  t.regex(String(declined[0]?.reason), /uid 65534 is not root/);

  const elsewhere = await runPlugin(other, join(cniBinDir, 'bridge'), { command: 'VERSION' }, version);
  t.is(elsewhere.exitCode, 0, elsewhere.stderr);
  t.is(agent.entries('CNI call served').length, 0, 'an agent serves only its own network namespace');
  t.is(agent.entries('CNI call declined').length, 1);
});

async function doctorSays(host: string, root: string): Promise<{ severity: string; detail: string } | undefined> {
  const r = await nsRun(host, ctnet, ['debug', 'doctor', '--json'], {
    env: testEnv(root),
    allowFailure: true,
  });
  const report = JSON.parse(r.stdout) as { findings: { check: string; severity: string; detail: string }[] };
  return report.findings.find((f) => f.check === 'agent');
}

test('debug doctor tells whether an agent serves the namespace; one agent per namespace (aliases included); --idle-exit', async (t) => {
  const sb = await createSandbox(t);
  t.is((await doctorSays(sb.host, sb.dir))?.severity, 'info', 'no agent yet');
  const first = await startAgent(t, sb.host, sb.dir);
  t.is((await doctorSays(sb.host, sb.dir))?.severity, 'ok', 'served by this build’s agent');
  const second = await nsRun(sb.host, ctnet, ['cni-daemon'], { allowFailure: true }); // the old name starts the same agent
  t.not(second.code, 0);
  t.regex(second.stderr, /one already serves this network namespace/);
  first.child.kill('SIGTERM');
  t.is(await first.exited, 0, 'SIGTERM ends it cleanly');

  const idle = await startAgent(t, sb.host, sb.dir, ['--idle-exit', '2']);
  const started = Date.now();
  t.is(await idle.exited, 0);
  t.true(Date.now() - started < 10_000, 'it exited on its own after the idle time');
});
