/**
 * The agent isolates calls and knows who calls it:
 * - an input that hangs Node's recursive mkdir (host-local "dataDir" under /proc) gets an error at
 *   once, and calls beside it are served;
 * - a call past its deadline is answered with CNI error 11 and what it did is undone once it ends;
 * - a stuck event loop takes the agent out of service: the call that stuck it gets error 11, a call
 *   waiting meanwhile is declined and its shim runs the plugin itself;
 * - kill -9 of the agent mid-call: the shim reports error 11 and the runtime's DEL cleans up;
 * - identity is bound when a connection is accepted: a process that connected and is gone cannot get
 *   its request served, even when a host process has taken its pid; a caller in another mount
 *   namespace is declined.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { encodeRequest } from '../agent/index.js';
import { run } from '../core/index.js';
import { bridgeConf, startAgent } from './agent-helpers.js';
import { cniBinDir, createNetns, createSandbox, netnsPath, nsRun, repoRoot, runPlugin } from './sandbox.js';

const bridge = join(cniBinDir, 'bridge');

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Holds the flock of a host-local lease directory until release() (as another ADD would, for long). */
async function holdLeaseLock(t: ExecutionContext, dataDir: string, network: string): Promise<{ release(): Promise<void> }> {
  const dir = join(dataDir, network);
  mkdirSync(dir, { recursive: true });
  const holder = spawn('flock', [join(dir, 'lock'), 'sh', '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const gone = new Promise((r) => holder.once('exit', r));
  t.teardown(async () => {
    holder.kill('SIGKILL');
    await gone;
  });
  await new Promise<void>((resolve) => holder.stdout?.once('data', () => resolve()));
  return {
    async release() {
      holder.stdin?.end();
      await gone;
    },
  };
}

async function containerHasEth0(ctr: string): Promise<boolean> {
  return (await nsRun(ctr, 'ip', ['link', 'show', 'dev', 'eth0'], { allowFailure: true })).code === 0;
}

function leases(dataDir: string): string[] {
  const dir = join(dataDir, 'agentnet');
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
}

test('host-local with dataDir under /proc or a FIFO as resolvConf gets an error at once; VERSION and an ADD beside it are served', async (t) => {
  const sb = await createSandbox(t);
  const agent = await startAgent(t, sb.host, sb.dir);
  const ctr = await createNetns(t, 'c');
  const ipam = { type: 'host-local', ranges: [[{ subnet: '10.78.0.0/24' }]] };
  const procDir = { cniVersion: '1.1.0', name: 'procnet', type: 'host-local', ipam: { ...ipam, dataDir: '/proc/no-such-dir' } };
  const fifo = join(sb.dir, 'resolv.fifo');
  await run('mkfifo', [fifo]);
  const fifoConf = {
    cniVersion: '1.1.0',
    name: 'fifonet',
    type: 'host-local',
    ipam: { ...ipam, dataDir: join(sb.dir, 'ipam'), resolvConf: fifo },
  };
  const good = bridgeConf(join(sb.dir, 'ipam'));
  const hostLocal = join(cniBinDir, 'host-local');
  const started = Date.now();
  const [wedging, fifoRead, version, add] = await Promise.all([
    runPlugin(sb.host, hostLocal, { command: 'ADD', containerId: 'ctr-proc', netns: netnsPath(ctr), ifname: 'eth1' }, procDir),
    runPlugin(sb.host, hostLocal, { command: 'ADD', containerId: 'ctr-fifo', netns: netnsPath(ctr), ifname: 'eth2' }, fifoConf),
    runPlugin(sb.host, bridge, { command: 'VERSION' }, { cniVersion: '1.0.0' }),
    runPlugin(sb.host, bridge, { command: 'ADD', containerId: 'ctr-good', netns: netnsPath(ctr), ifname: 'eth0' }, good),
  ]);
  t.is(wedging.exitCode, 1, wedging.stdout);
  t.regex(String(wedging.json?.msg), /no-such-dir/);
  t.is(fifoRead.exitCode, 1, fifoRead.stdout);
  t.regex(String(fifoRead.json?.msg), /resolvConf.*not a regular file/);
  t.true(Date.now() - started < 10_000, 'no call waited on another');
  t.is(version.exitCode, 0, version.stdout);
  t.is(add.exitCode, 0, add.stdout);
  const served = agent.entries('CNI call served').map((e) => `${e.type} ${e.command}`);
  t.deepEqual(
    served.sort(),
    ['bridge ADD', 'bridge VERSION', 'host-local ADD', 'host-local ADD'],
    'all were served by the agent',
  );
  await runPlugin(sb.host, bridge, { command: 'DEL', containerId: 'ctr-good', netns: netnsPath(ctr), ifname: 'eth0' }, good);
});

test('an ADD past its deadline fails with error 11, and what it did once it ends is undone', async (t) => {
  const sb = await createSandbox(t);
  const agent = await startAgent(t, sb.host, sb.dir, ['--call-deadline', '2']);
  const ctr = await createNetns(t, 'c');
  const dataDir = join(sb.dir, 'ipam');
  const conf = bridgeConf(dataDir);
  const call = { containerId: 'ctr-late', netns: netnsPath(ctr), ifname: 'eth0' };
  const lock = await holdLeaseLock(t, dataDir, 'agentnet');

  const started = Date.now();
  const add = await runPlugin(sb.host, bridge, { command: 'ADD', ...call }, conf);
  t.is(add.exitCode, 1);
  t.is(add.json?.code, 11, add.stdout);
  t.regex(String(add.json?.msg), /did not finish within 2 s/);
  t.true(Date.now() - started < 8000, 'answered at its deadline, not when the lock came free');

  // The ADD goes on once the lease directory is free; the agent then deletes what it made.
  await lock.release();
  await until('the late ADD undone', () => agent.entries('CNI call past its deadline undone').length === 1);
  t.false(await containerHasEth0(ctr), 'the container interface the late ADD made is gone');
  t.deepEqual(leases(dataDir), [], 'its lease is released');
  const hostLinks = await nsRun(sb.host, 'ip', ['-o', 'link', 'show', 'type', 'veth']);
  t.is(hostLinks.stdout.trim(), '', 'no host veth left');

  // The runtime's DEL after the failed ADD, and a new ADD, work as usual.
  t.is((await runPlugin(sb.host, bridge, { command: 'DEL', ...call }, conf)).exitCode, 0);
  const again = await runPlugin(sb.host, bridge, { command: 'ADD', ...call }, conf);
  t.is(again.exitCode, 0, again.stdout);
  t.is((await runPlugin(sb.host, bridge, { command: 'DEL', ...call }, { ...conf, prevResult: again.json })).exitCode, 0);
});

test('a stuck event loop: the agent leaves service, the stuck call gets error 11, a waiting call is declined and runs in its shim', async (t) => {
  const sb = await createSandbox(t);
  const agent = await startAgent(t, sb.host, sb.dir, ['--watchdog', '1'], { CTNET_AGENT_TEST_STALL: 'ctr-stall' });
  const ctr = await createNetns(t, 'c');
  const conf = bridgeConf(join(sb.dir, 'ipam'));
  const stuck = runPlugin(
    sb.host,
    bridge,
    { command: 'ADD', containerId: 'ctr-stall', netns: netnsPath(ctr), ifname: 'eth0' },
    conf,
  );
  await until('the event loop stuck', () => agent.entries('test hook: blocking the event loop').length === 1);
  const waiting = await runPlugin(sb.host, bridge, { command: 'VERSION' }, { cniVersion: '1.0.0' });
  const stuckOutcome = await stuck;

  t.is(stuckOutcome.json?.code, 11, stuckOutcome.stdout);
  t.regex(String(stuckOutcome.json?.msg), /ctnet agent closed the connection/);
  t.is(waiting.exitCode, 0, waiting.stderr);
  t.true(((waiting.json?.supportedVersions ?? []) as string[]).includes('1.1.0'));
  t.is(await agent.exited, null, 'the agent is gone (killed by its watchdog)');
  const words = agent.entries('the event loop is stuck: out of service, exiting');
  t.is(words.length, 1);
  t.is(words[0]?.declined, 1, 'the call that waited was declined, not lost');
  t.is(agent.entries('CNI call served').length, 0);

  // Without an agent the shim runs the plugin: the runtime's DEL works.
  const del = await runPlugin(
    sb.host,
    bridge,
    { command: 'DEL', containerId: 'ctr-stall', netns: netnsPath(ctr), ifname: 'eth0' },
    conf,
  );
  t.is(del.exitCode, 0, del.stdout);
});

test('kill -9 of the agent mid-ADD: the shim reports error 11 and the runtime’s DEL leaves nothing', async (t) => {
  const sb = await createSandbox(t);
  const agent = await startAgent(t, sb.host, sb.dir);
  const ctr = await createNetns(t, 'c');
  const dataDir = join(sb.dir, 'ipam');
  const conf = bridgeConf(dataDir);
  const call = { containerId: 'ctr-killed', netns: netnsPath(ctr), ifname: 'eth0' };
  const lock = await holdLeaseLock(t, dataDir, 'agentnet');
  const add = runPlugin(sb.host, bridge, { command: 'ADD', ...call }, conf);
  await new Promise((r) => setTimeout(r, 500));
  agent.child.kill('SIGKILL');
  const outcome = await add;
  t.is(outcome.exitCode, 1);
  t.is(outcome.json?.code, 11, outcome.stdout);
  await lock.release();
  const del = await runPlugin(sb.host, bridge, { command: 'DEL', ...call }, conf);
  t.is(del.exitCode, 0, del.stdout);
  t.false(await containerHasEth0(ctr));
  t.deepEqual(leases(dataDir), []);
});

// ---- identity: a client that connects, hands its socket to another process, and may exit before the request.

const koffiPath = createRequire(join(repoRoot, 'package.json')).resolve('koffi');

/** Connects to the agent (exact abstract name), passes the socket to a holder as fd 3, and exits unless KEEP is set. */
const connectorJs = `
const koffi = require(process.env.KOFFI);
const lib = koffi.load('libc.so.6');
const socket = lib.func('int socket(int domain, int type, int protocol)');
const connect = lib.func('int connect(int fd, const void *addr, uint32_t len)');
const fd = socket(1, 1, 0);
const name = Buffer.from(process.env.SOCK);
const addr = Buffer.alloc(3 + name.length);
addr.writeUInt16LE(1, 0);
name.copy(addr, 3);
if (connect(fd, addr, addr.length) < 0) { console.log(JSON.stringify({ error: 'connect' })); process.exit(2); }
const holder = require('child_process').spawn(process.execPath, ['-e', process.env.HOLDER], { stdio: ['ignore', 'inherit', 'inherit', fd], detached: true });
console.log(JSON.stringify({ connector: process.pid }));
if (process.env.KEEP) holder.once('exit', () => process.exit(0)); else { holder.unref(); process.exit(0); }
`;

/** Waits for the GO file, sends the request on fd 3, prints what came back. */
const holderJs = `
const fs = require('fs');
while (!fs.existsSync(process.env.GO)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
fs.writeSync(3, Buffer.from(process.env.FRAME, 'base64'));
const chunks = []; const buf = Buffer.alloc(65536); let n;
try { while ((n = fs.readSync(3, buf)) > 0) chunks.push(Buffer.from(buf.subarray(0, n))); } catch {}
const all = Buffer.concat(chunks);
console.log(JSON.stringify({ replyKind: all.length >= 8 ? all.readUInt32LE(4) : null }));
`;

interface Client {
  child: ChildProcess;
  /** The connector's pid in the test's pid namespace, once it has connected. */
  connector: Promise<number>;
  reply: Promise<number | null>;
}

function connectClient(
  t: ExecutionContext,
  nsenter: string[],
  socket: string,
  go: string,
  opts: { keep: boolean; unshareMount: boolean },
): Client {
  const frame = encodeRequest({
    api: 1,
    kind: 'cni',
    plugin: 'bridge',
    env: { CNI_COMMAND: 'VERSION' },
    config: '{"cniVersion":"1.0.0"}',
  });
  const argv = [...nsenter, ...(opts.unshareMount ? ['unshare', '--mount'] : []), process.execPath, '-e', connectorJs];
  const child = spawn('nsenter', argv, {
    env: {
      PATH: process.env.PATH,
      KOFFI: koffiPath,
      SOCK: socket,
      HOLDER: holderJs,
      GO: go,
      FRAME: frame.toString('base64'),
      ...(opts.keep && { KEEP: '1' }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const lines: Record<string, unknown>[] = [];
  let resolveConnector: (pid: number) => void = () => {};
  let resolveReply: (kind: number | null) => void = () => {};
  const connector = new Promise<number>((r) => {
    resolveConnector = r;
  });
  const reply = new Promise<number | null>((r) => {
    resolveReply = r;
  });
  let text = '';
  child.stdout?.on('data', (b: Buffer) => {
    text += b.toString();
    for (;;) {
      const nl = text.indexOf('\n');
      if (nl < 0) break;
      const line = JSON.parse(text.slice(0, nl)) as Record<string, unknown>;
      text = text.slice(nl + 1);
      lines.push(line);
      if (typeof line.connector === 'number') resolveConnector(line.connector);
      if ('replyKind' in line) resolveReply(line.replyKind as number | null);
      if (line.error) resolveConnector(-1);
    }
  });
  return { child, connector, reply };
}

test('identity is bound at accept: a gone caller whose pid a host process took is refused; another mount namespace is declined', async (t) => {
  const sb = await createSandbox(t);
  // A pid namespace of the test's own, whose next pid the test can choose (ns_last_pid): the agent and its callers live in it.
  const init = spawn('unshare', ['--pid', '--fork', 'sleep', '600'], { stdio: 'ignore' });
  let initPid = 0;
  await until('the pid namespace', () => {
    const children = readFileSync(`/proc/${init.pid}/task/${init.pid}/children`, 'utf8').trim();
    initPid = Number(children.split(' ')[0] || 0);
    return initPid > 0;
  });
  t.teardown(async () => {
    process.kill(initPid, 'SIGKILL'); // ends every process of the namespace
    await new Promise((r) => (init.exitCode === null ? init.once('exit', r) : r(null)));
  });
  const inPidns = [`--pid=/proc/${initPid}/ns/pid`];
  const agent = await startAgent(t, sb.host, sb.dir, [], {}, { nsenter: inPidns });
  const info = JSON.parse(readFileSync(join(repoRoot, 'dist', 'build-info.json'), 'utf8')) as { agentSocket: string };
  const socket = info.agentSocket.slice(1);
  const nsenter = [...inPidns, `--net=${netnsPath(sb.host)}`];

  // Control: a host caller that stays is served.
  const goServed = join(sb.dir, 'go-served');
  const served = connectClient(t, nsenter, socket, goServed, { keep: true, unshareMount: false });
  t.true((await served.connector) > 0);
  writeFileSync(goServed, '');
  t.is(await served.reply, 2, 'a CNI answer');

  // A container's caller (another mount namespace) that stays is declined.
  const goDeclined = join(sb.dir, 'go-declined');
  const declined = connectClient(t, nsenter, socket, goDeclined, { keep: true, unshareMount: true });
  t.true((await declined.connector) > 0);
  writeFileSync(goDeclined, '');
  t.is(await declined.reply, 1, 'declined');
  t.regex(String(agent.entries('CNI call declined').at(-1)?.reason), /another mount namespace/);

  // A container's caller connects and exits; a host process takes its pid; then the request is sent on its socket.
  const goReused = join(sb.dir, 'go-reused');
  const reused = connectClient(t, nsenter, socket, goReused, { keep: false, unshareMount: true });
  const pid = await reused.connector;
  t.true(pid > 1);
  await until('the connector gone', () => !pidInNamespace(initPid, pid));
  const taker = await run(
    'nsenter',
    [...inPidns, 'sh', '-c', `echo ${pid - 1} > /proc/sys/kernel/ns_last_pid; sleep 600 </dev/null >/dev/null 2>&1 & echo $!`],
    { timeoutMs: 10_000 },
  );
  t.is(Number(taker.stdout.trim()), pid, 'a host process now has the pid that connected');
  writeFileSync(goReused, '');
  t.is(await reused.reply, 1, 'declined');
  await until('the refusal logged', () => agent.entries('request refused: the process that connected is gone').length === 1);
  t.is(agent.entries('CNI call declined').length, 1, 'refused before it reached the main thread, whatever the pid now names');
  t.is(agent.entries('CNI call served').length, 1, 'only the control was served');
});

/** Whether a process numbered `nsPid` in the pid namespace of `initPid` exists. */
function pidInNamespace(initPid: number, nsPid: number): boolean {
  const ns = readlinkSync(`/proc/${initPid}/ns/pid`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const nspid = /^NSpid:\s*(.*)$/m
        .exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]
        ?.trim()
        .split(/\s+/);
      if (nspid && Number(nspid.at(-1)) === nsPid && readlinkSync(`/proc/${entry}/ns/pid`) === ns) return true;
    } catch {
      /* gone meanwhile */
    }
  }
  return false;
}
