/**
 * `ctnet cni-daemon` and the shim bin/cni/<type>: with a daemon in the sandbox host namespace the
 * shim's calls are served by it (its debug log says so) with the same results and errors as the
 * Node plugins give; callers it must not serve (not root, another network namespace) get the Node
 * plugin; one daemon per namespace; --idle-exit; `debug doctor` reports it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { testEnv } from './debug-cli.js';
import { cniBinDir, createNetns, createSandbox, netnsPath, nsRun, repoRoot, runPlugin } from './sandbox.js';

const ctnet = join(repoRoot, 'bin', 'ctnet');
const nodePlugins = join(repoRoot, 'bin', 'cni-node');

interface Daemon {
  child: ChildProcess;
  logFile: string;
  /** The daemon's log lines with this message. */
  entries(msg: string): Record<string, unknown>[];
  exited: Promise<number | null>;
}

async function startDaemon(t: ExecutionContext, host: string, dir: string, args: string[] = []): Promise<Daemon> {
  const logFile = join(dir, `daemon-${Math.random().toString(16).slice(2)}.log`);
  const child = spawn('nsenter', [`--net=${netnsPath(host)}`, ctnet, 'cni-daemon', ...args], {
    env: { ...process.env, CTNET_LOG_LEVEL: 'debug', CTNET_LOG_FILE: logFile },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (stderr.includes('serving @')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`daemon exited (${code}): ${stderr}`)));
  });
  const entries = (msg: string) =>
    existsSync(logFile)
      ? readFileSync(logFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .filter((e) => e.msg === msg)
      : [];
  return { child, logFile, entries, exited };
}

function bridgeConf(dataDir: string) {
  return {
    cniVersion: '1.1.0',
    name: 'daemonnet',
    type: 'bridge',
    bridge: 'ctd0',
    isGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.77.0.0/24' }]] },
  };
}

test('a daemon in the host namespace serves ADD, CHECK and DEL with the plugins’ results', async (t) => {
  const sb = await createSandbox(t);
  const daemon = await startDaemon(t, sb.host, sb.dir);
  const ctr = await createNetns(t, 'c');
  const dataDir = join(sb.dir, 'ipam');
  const conf = bridgeConf(dataDir);
  const call = { containerId: 'ctr-daemon-1', netns: netnsPath(ctr), ifname: 'eth0' };

  const add = await runPlugin(sb.host, join(cniBinDir, 'bridge'), { command: 'ADD', ...call }, conf);
  t.is(add.exitCode, 0, add.stdout + add.stderr);
  const ips = add.json?.ips as { address: string }[];
  t.regex(ips[0]?.address ?? '', /^10\.77\.0\.\d+\/24$/);
  const addr = await nsRun(ctr, 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'eth0']);
  t.true(addr.stdout.includes(ips[0]?.address ?? 'none'), 'the container has the address the result names');
  t.true(
    readdirSync(join(dataDir, 'daemonnet')).some((f) => f.startsWith('10.77.0.')),
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
    readdirSync(join(dataDir, 'daemonnet')).some((f) => f.startsWith('10.77.0.')),
    'DEL released the lease',
  );
  const links = await nsRun(ctr, 'ip', ['-o', 'link', 'show', 'dev', 'eth0'], { allowFailure: true });
  t.not(links.code, 0, 'DEL removed the container interface');

  const served = daemon.entries('CNI call served').filter((e) => e.type === 'bridge');
  t.deepEqual(
    served.map((e) => e.command),
    ['ADD', 'CHECK', 'DEL'],
  );
});

test('through the daemon a bad configuration gives the same CNI error as the Node plugin', async (t) => {
  const sb = await createSandbox(t);
  const daemon = await startDaemon(t, sb.host, sb.dir);
  const ctr = await createNetns(t, 'c');
  const conf = { ...bridgeConf(join(sb.dir, 'ipam')), mtu: -5 };
  const call = { command: 'ADD' as const, containerId: 'ctr-daemon-2', netns: netnsPath(ctr), ifname: 'eth0' };
  const viaDaemon = await runPlugin(sb.host, join(cniBinDir, 'bridge'), call, conf);
  const direct = await runPlugin(sb.host, join(nodePlugins, 'bridge'), call, conf);
  t.is(viaDaemon.exitCode, 1);
  t.deepEqual(viaDaemon.json, direct.json);
  t.is(typeof viaDaemon.json?.code, 'number');
  t.is(daemon.entries('CNI call served').length, 1, 'the daemon answered the call');
});

test('callers the daemon must not serve run the Node plugin: another user, another network namespace', async (t) => {
  const sb = await createSandbox(t);
  const daemon = await startDaemon(t, sb.host, sb.dir);
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
  const declined = daemon.entries('CNI call declined');
  t.is(declined.length, 1);
  t.regex(String(declined[0]?.reason), /uid 65534 is not root/);

  const elsewhere = await runPlugin(other, join(cniBinDir, 'bridge'), { command: 'VERSION' }, version);
  t.is(elsewhere.exitCode, 0, elsewhere.stderr);
  t.is(daemon.entries('CNI call served').length, 0, 'a daemon serves only its own network namespace');
  t.is(daemon.entries('CNI call declined').length, 1);
});

async function doctorSays(host: string, root: string): Promise<{ severity: string; detail: string } | undefined> {
  const r = await nsRun(host, ctnet, ['debug', 'doctor', '--json'], {
    env: testEnv(root),
    allowFailure: true,
  });
  const report = JSON.parse(r.stdout) as { findings: { check: string; severity: string; detail: string }[] };
  return report.findings.find((f) => f.check === 'cni daemon');
}

test('debug doctor tells whether a daemon serves the namespace; one daemon per namespace; --idle-exit', async (t) => {
  const sb = await createSandbox(t);
  t.is((await doctorSays(sb.host, sb.dir))?.severity, 'info', 'no daemon yet');
  const first = await startDaemon(t, sb.host, sb.dir, ['--idle-exit', '3']);
  t.is((await doctorSays(sb.host, sb.dir))?.severity, 'ok', 'served by this build’s daemon');
  const second = await nsRun(sb.host, ctnet, ['cni-daemon'], { allowFailure: true });
  t.not(second.code, 0);
  t.regex(second.stderr, /one already serves this network namespace/);
  const started = Date.now();
  t.is(await first.exited, 0);
  t.true(Date.now() - started < 8000, 'it exited on its own after the idle time');
});
