/**
 * Soak: the agent (`ctnet agent`) serves many ADD/DEL cycles of the chain bridge (host-local, ipMasq) + portmap
 * (one published TCP port) over a pool of container namespaces. Each call is sent as the shim bin/cni/<type> sends it, over the
 * agent's socket from a socket made inside the sandbox host (no process per call: the figures are about the
 * agent, and ten thousand cycles stay within minutes). Not a timed test: it prints what the agent and the kernel
 * hold at the start (after a warm-up) and at checkpoints up to the end, so growth shows:
 *
 * - the agent's memory: RSS, V8 heap used and total, external (after a forced GC), from a probe preloaded into it
 *   (bench/soak-probe.cjs);
 * - its open file descriptors (/proc/PID/fd);
 * - kernel objects in the sandbox host: links, addresses, nft elements of the inet ctnet table, iptables rules;
 * - files: leases in the IPAM dir, portmap's claims and attachment records.
 *
 * Everything runs in sandbox namespaces named ctb-…, removed at the end (also on Ctrl-C).
 * Usage: node --import tsx bench/agent-soak.ts [--cycles 10000] [--every 1000] [--pool 16] [--backend nftables|iptables]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeReply, encodeRequest, takeFrames } from '../agent/protocol.js';
import { loadKoffi } from '../core/index.js';
import { inNetns } from '../netns/index.js';
import { cleanup, netns, opt, repo, sh, tempDir } from './common.js';

const cycles = Number(opt('cycles', '10000'));
const every = Number(opt('every', '1000'));
const poolSize = Number(opt('pool', '16'));
const backend = opt('backend', 'nftables');
const warmup = 50;
const socketName = (JSON.parse(readFileSync(join(repo, 'dist', 'build-info.json'), 'utf8')) as { agentSocket: string })
  .agentSocket;

const host = netns('soakh');
const pool = Array.from({ length: poolSize }, (_, i) => netns(`soak${i}`));
const dir = tempDir(mkdtempSync(join(tmpdir(), 'ctb-soak-')));
const dataDir = join(dir, 'ipam');
const stateDir = join(dir, 'portmap');
const probeFile = join(dir, 'probe.json');
sh('ip', ['-n', host, 'link', 'set', 'lo', 'up']);

const bridgeConf = {
  cniVersion: '1.1.0',
  name: 'soaknet',
  type: 'bridge',
  bridge: 'ctsoak0',
  isGateway: true,
  ipMasq: true,
  ipMasqBackend: backend,
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.125.0.0/20' }]], dataDir },
};

function portmapConf(prevResult: unknown) {
  return {
    cniVersion: '1.1.0',
    name: 'soaknet',
    type: 'portmap',
    capabilities: { portMappings: true },
    backend,
    stateDir,
    runtimeConfig: { portMappings: [{ hostPort: 18500, containerPort: 80, protocol: 'tcp' }] },
    prevResult,
  };
}

/** The agent, with the probe preloaded; its PID is the Node process's (nsenter execs). */
function startAgent(): number {
  const agent = spawn(
    'nsenter',
    [
      `--net=/run/netns/${host}`,
      process.execPath,
      '--expose-gc',
      '--require',
      join(repo, 'bench', 'soak-probe.cjs'),
      join(repo, 'bin', 'ctnet-node'),
      'agent',
    ],
    { stdio: 'ignore', env: { ...process.env, CTNET_SOAK_PROBE: probeFile } },
  );
  if (agent.pid === undefined) throw new Error('failed to start the agent');
  for (let i = 0; i < 200; i++) {
    const unix = spawnSync('nsenter', [`--net=/run/netns/${host}`, 'cat', '/proc/net/unix'], { encoding: 'utf8' });
    if (unix.stdout.includes(socketName)) return agent.pid;
    spawnSync('sleep', ['0.05']);
  }
  throw new Error('the agent did not start listening');
}

interface Figures {
  cycle: number;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  fds: number;
  links: number;
  addresses: number;
  nftElements: number;
  iptablesRules: number;
  leases: number;
  claims: number;
}

function probe(pid: number): { rss: number; heapUsed: number; heapTotal: number; external: number } {
  rmSync(probeFile, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200 && !existsSync(probeFile); i++) spawnSync('sleep', ['0.02']);
  for (let i = 0; i < 50; i++) {
    try {
      return JSON.parse(readFileSync(probeFile, 'utf8'));
    } catch {
      spawnSync('sleep', ['0.02']);
    }
  }
  throw new Error('the agent did not answer the memory probe');
}

const count = (text: string) => text.split('\n').filter(Boolean).length;
const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

function figures(cycle: number, pid: number): Figures {
  const mem = probe(pid);
  const inHost = (cmd: string, args: string[]) =>
    spawnSync('nsenter', [`--net=/run/netns/${host}`, cmd, ...args], { encoding: 'utf8' }).stdout ?? '';
  const ruleset = inHost('nft', ['list', 'table', 'inet', 'ctnet']);
  const elements = [...ruleset.matchAll(/elements = \{([^}]*)\}/g)].reduce(
    (n, m) => n + (m[1] ?? '').split(',').filter((e) => e.trim()).length,
    0,
  );
  const leaseDir = join(dataDir, 'soaknet');
  const list = (d: string) => (existsSync(d) ? readdirSync(d) : []);
  return {
    cycle,
    rssMiB: mib(mem.rss),
    heapUsedMiB: mib(mem.heapUsed),
    heapTotalMiB: mib(mem.heapTotal),
    externalMiB: mib(mem.external),
    fds: readdirSync(`/proc/${pid}/fd`).length,
    links: count(inHost('ip', ['-o', 'link', 'show'])),
    addresses: count(inHost('ip', ['-o', 'addr', 'show'])),
    nftElements: elements,
    iptablesRules: count(inHost('iptables-save', [])) - count(inHost('sh', ['-c', 'iptables-save | grep -v "^-A"'])),
    leases: list(leaseDir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).length,
    claims:
      list(join(stateDir, 'ports')).reduce((n, p) => n + list(join(stateDir, 'ports', p)).length, 0) +
      list(join(stateDir, 'attachments')).length,
  };
}

/**
 * A unix socket connected to the agent's abstract name, made inside the sandbox host (the name exists only there).
 * By hand: the address must be exactly the name's length (no padding), as the agent binds it.
 */
const libc = (() => {
  const lib = loadKoffi().load('libc.so.6');
  return {
    socket: lib.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number,
    connect: lib.func('int connect(int fd, const void *addr, uint32_t len)') as (fd: number, a: Buffer, n: number) => number,
  };
})();

function connectAgent(): Socket {
  const name = Buffer.from(socketName.slice(1), 'utf8');
  const addr = Buffer.alloc(3 + name.length); // sa_family AF_UNIX, then NUL (abstract), then the name
  addr.writeUInt16LE(1, 0);
  name.copy(addr, 3);
  const fd = inNetns(`/run/netns/${host}`, () => libc.socket(1, 1 | 0x80000, 0)); // AF_UNIX, SOCK_STREAM | CLOEXEC
  if (fd < 0 || libc.connect(fd, addr, addr.length) < 0) throw new Error(`failed to connect to ${socketName}`);
  return new Socket({ fd, readable: true, writable: true });
}

/** One call as the shim makes it: the socket is made inside the sandbox host, where the agent's name exists. */
function callAgent(plugin: string, command: string, ctr: string, conf: unknown): Promise<string> {
  const env = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: ctr,
    CNI_NETNS: `/run/netns/${ctr}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: join(repo, 'bin', 'cni'),
  };
  const request = encodeRequest({ api: 1, kind: 'cni', plugin, env, config: JSON.stringify(conf) });
  return new Promise((resolve, reject) => {
    const socket = connectAgent();
    let data = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => {
      data = Buffer.concat([data, c]);
      const [frame] = takeFrames(data).frames;
      if (!frame) return;
      socket.destroy();
      const r = decodeReply(frame);
      if (r.kind !== 'cni') return reject(new Error(`the agent answered ${plugin} ${command} with ${JSON.stringify(r)}`));
      if (r.exitCode !== 0) return reject(new Error(`${plugin} ${command} failed: ${r.stdout} ${r.stderr}`));
      resolve(r.stdout);
    });
    socket.on('error', reject);
    socket.on('end', () => reject(new Error(`the agent closed the connection without answering ${plugin} ${command}`)));
    socket.write(request);
  });
}

async function cycle(i: number): Promise<void> {
  const ctr = pool[i % pool.length] as string;
  const result = JSON.parse(await callAgent('bridge', 'ADD', ctr, bridgeConf)) as unknown;
  await callAgent('portmap', 'ADD', ctr, portmapConf(result));
  await callAgent('portmap', 'DEL', ctr, portmapConf(result));
  await callAgent('bridge', 'DEL', ctr, { ...bridgeConf, prevResult: result });
}

let pid: number | undefined;
process.on('exit', () => {
  if (pid !== undefined) process.kill(pid, 'SIGTERM');
});
try {
  pid = startAgent();
  const rows: Figures[] = [figures(0, pid)];
  const started = Date.now();
  for (let i = 1; i <= cycles; i++) {
    await cycle(i);
    if (i === warmup || i % every === 0 || i === cycles) {
      rows.push(figures(i, pid));
      const last = rows[rows.length - 1] as Figures;
      process.stderr.write(`cycle ${i}: ${JSON.stringify(last)} (${((Date.now() - started) / i).toFixed(1)} ms a cycle)\n`);
    }
  }
  const keys = Object.keys(rows[0] as Figures) as (keyof Figures)[];
  console.log(`\nagent soak: ${cycles} ADD/DEL cycles of bridge (host-local, ipMasq) + portmap, ${backend} backend,`);
  console.log(`${poolSize} container namespaces reused, ${((Date.now() - started) / cycles).toFixed(1)} ms a cycle (4 calls)\n`);
  console.log(`| ${keys.join(' | ')} |`);
  console.log(`| ${keys.map(() => '---').join(' | ')} |`);
  for (const r of rows) console.log(`| ${keys.map((k) => r[k]).join(' | ')} |`);
  const start = rows.find((r) => r.cycle === warmup) ?? (rows[0] as Figures);
  const end = rows[rows.length - 1] as Figures;
  console.log(
    `\nfrom cycle ${start.cycle} to ${end.cycle}: RSS ${start.rssMiB} → ${end.rssMiB} MiB, heap used ${start.heapUsedMiB} → ${end.heapUsedMiB} MiB, fds ${start.fds} → ${end.fds}, links ${start.links} → ${end.links}, nft elements ${start.nftElements} → ${end.nftElements}, leases ${start.leases} → ${end.leases}`,
  );
} finally {
  if (pid !== undefined) process.kill(pid, 'SIGTERM');
  pid = undefined;
  cleanup();
}
