/**
 * Sandboxes for root-only integration tests. Everything lives in network namespaces named
 * `ctt-…` that the test creates and removes (t.teardown); the machine's own namespace is never
 * touched. "The internet" is a world namespace wired to the sandbox host by a veth.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type RunResult, run } from '../core/index.js';

export const sandboxPrefix = 'ctt-';
export const repoRoot = resolve(import.meta.dirname, '..');
export const cniBinDir = join(repoRoot, 'bin', 'cni');
export const referenceCniDir = '/usr/lib/cni';

/** Host side and world side of the sandbox host ↔ world link (benchmark range, never routed out). */
export const worldLink = { hostAddr: '198.18.0.1', worldAddr: '198.18.0.2', prefix: 30 } as const;

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}

/** A sandbox namespace's path by name; a path (a container's namespace) is taken as it is. */
export function netnsPath(name: string): string {
  return name.startsWith('/') ? name : `/run/netns/${name}`;
}

export async function sh(cmd: string, args: string[], input?: string): Promise<RunResult> {
  return run(cmd, args, { input, timeoutMs: 60_000 });
}

/** Runs a command inside namespace `ns` (network namespace only, mounts stay shared). */
export async function nsRun(
  ns: string,
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; allowFailure?: boolean } = {},
) {
  return run('nsenter', [`--net=${netnsPath(ns)}`, cmd, ...args], { ...opts, timeoutMs: 60_000 });
}

export async function createNetns(t: Teardown, role: string): Promise<string> {
  const name = `${sandboxPrefix}${randomSuffix()}-${role}`;
  await sh('ip', ['netns', 'add', name]);
  t.teardown(() => deleteNetns(name));
  await sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

export async function deleteNetns(name: string): Promise<void> {
  await run('ip', ['netns', 'del', name], { allowFailure: true });
}

export function tempDir(t: Teardown, label = 'data'): string {
  const dir = mkdtempSync(join(tmpdir(), `ctt-${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Sandbox {
  /** The sandbox "host" namespace: plugins and the runner run here. */
  host: string;
  /** The "internet" namespace, wired to host by a veth (only when asked for). */
  world?: string;
  /** Per-test directory for IPAM data, state and logs. */
  dir: string;
}

export async function createSandbox(t: Teardown, opts: { world?: boolean } = {}): Promise<Sandbox> {
  const host = await createNetns(t, 'h');
  const dir = tempDir(t);
  const sandbox: Sandbox = { host, dir };
  if (opts.world) {
    const world = await createNetns(t, 'w');
    await sh('ip', ['-n', host, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', world]);
    await sh('ip', ['-n', host, 'addr', 'add', `${worldLink.hostAddr}/${worldLink.prefix}`, 'dev', 'uplink0']);
    await sh('ip', ['-n', world, 'addr', 'add', `${worldLink.worldAddr}/${worldLink.prefix}`, 'dev', 'eth0']);
    await sh('ip', ['-n', host, 'link', 'set', 'uplink0', 'up']);
    await sh('ip', ['-n', world, 'link', 'set', 'eth0', 'up']);
    // The world's only route is its own link: it can answer the host, never reach the containers directly.
    sandbox.world = world;
  }
  return sandbox;
}

export interface PluginCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  extraEnv?: Record<string, string>;
}

export interface PluginOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

/** Executes a CNI plugin binary inside the sandbox host namespace, as an orchestrator would. */
export async function runPlugin(host: string, binary: string, call: PluginCall, conf: unknown): Promise<PluginOutcome> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    CNI_COMMAND: call.command,
    CNI_PATH: call.path ?? cniBinDir,
    ...(call.containerId !== undefined && { CNI_CONTAINERID: call.containerId }),
    ...(call.netns !== undefined && { CNI_NETNS: call.netns }),
    ...(call.ifname !== undefined && { CNI_IFNAME: call.ifname }),
    ...(call.args !== undefined && { CNI_ARGS: call.args }),
    ...call.extraEnv,
  };
  const input = typeof conf === 'string' ? conf : JSON.stringify(conf);
  const r = await run('nsenter', [`--net=${netnsPath(host)}`, binary], { input, env, allowFailure: true, timeoutMs: 60_000 });
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { exitCode: r.code, stdout: r.stdout, stderr: r.stderr, json };
}

/** A snapshot of everything a plugin may change in a namespace, for "left exactly as it was" checks. */
export async function snapshotNetns(ns: string): Promise<string> {
  const parts = await Promise.all([
    nsRun(ns, 'ip', ['-o', 'link', 'show']).then((r) => r.stdout.replace(/\s+link\/\S+.*$/gm, '')),
    // DAD state (tentative, optimistic) changes on its own a second after a link comes up.
    nsRun(ns, 'ip', ['-o', 'addr', 'show']).then((r) =>
      r.stdout.replace(/valid_lft.*$/gm, '').replace(/ (tentative|optimistic|dadfailed)\b/g, ''),
    ),
    nsRun(ns, 'ip', ['route', 'show']).then((r) => r.stdout),
    nsRun(ns, 'ip', ['-6', 'route', 'show']).then((r) => r.stdout),
    nsRun(ns, 'iptables-save', []).then((r) => stripCounters(r.stdout)),
    nsRun(ns, 'ip6tables-save', []).then((r) => stripCounters(r.stdout)),
  ]);
  return parts.join('\n---\n');
}

function stripCounters(save: string): string {
  return save
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, ''))
    .join('\n');
}

const serverScript = `
const net = require('net'), dgram = require('dgram');
const [proto, host, port] = process.argv.slice(1);
if (proto === 'udp') {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m, r) => s.send('from ' + r.address + ' ' + m, r.port, r.address));
  s.bind(Number(port), host, () => process.stdout.write('ready\\n'));
} else {
  const s = net.createServer((c) => { c.on('data', (d) => { c.end('from ' + c.remoteAddress.replace(/^::ffff:/, '') + ' ' + d); }); });
  s.listen(Number(port), host, () => process.stdout.write('ready\\n'));
}`;

const clientScript = `
const net = require('net'), dgram = require('dgram');
const [proto, host, port, msg] = process.argv.slice(1);
const fail = (e) => { process.stdout.write('ERR ' + e); process.exit(2); };
setTimeout(() => fail('timeout'), 3000);
if (proto === 'udp') {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => { process.stdout.write(String(m)); process.exit(0); });
  s.on('error', (e) => fail(e.code));
  s.send(msg, Number(port), host);
} else {
  const c = net.connect(Number(port), host, () => c.write(msg));
  let out = ''; c.on('data', (d) => out += d); c.on('end', () => { process.stdout.write(out); process.exit(0); });
  c.on('error', (e) => fail(e.code));
}`;

export interface Server {
  process: ChildProcess;
}

/** Starts an echo server in `ns` that answers "from <client address> <message>". */
export async function startServer(t: Teardown, ns: string, proto: 'tcp' | 'udp', host: string, port: number): Promise<Server> {
  const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, process.execPath, '-e', serverScript, proto, host, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error('server did not start')), 10_000);
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      res();
    });
    child.once('exit', (code) => rej(new Error(`server exited with ${code}`)));
  });
  return { process: child };
}

/** Sends `msg` from `ns` and returns the server's answer, or "ERR <reason>". */
export async function connect(ns: string, proto: 'tcp' | 'udp', host: string, port: number, msg = 'hello'): Promise<string> {
  const r = await nsRun(ns, process.execPath, ['-e', clientScript, proto, host, String(port), msg], { allowFailure: true });
  return r.stdout.trim();
}
