/**
 * Soak: the CNI daemon serves many ADD/DEL cycles of the chain bridge (host-local, ipMasq) + portmap (one published
 * TCP port) over a pool of container namespaces. Each call is sent as the shim bin/cni/<type> sends it, over the
 * daemon's socket from a socket made inside the sandbox host (no process per call: the figures are about the
 * daemon, and ten thousand cycles stay within minutes). Not a timed test: it prints what the daemon and the kernel
 * hold at the start (after a warm-up) and at checkpoints up to the end, so growth shows:
 *
 * - the daemon's memory: RSS, V8 heap used and total, external (after a forced GC), from a probe preloaded into it
 *   (bench/soak-probe.cjs);
 * - its open file descriptors (/proc/PID/fd);
 * - kernel objects in the sandbox host: links, addresses, nft elements of the inet ctnet table, iptables rules;
 * - files: leases in the IPAM dir, portmap's claims and attachment records.
 *
 * Everything runs in sandbox namespaces named ctb-…, removed at the end (also on Ctrl-C).
 * Usage: node --import tsx bench/cni-soak.ts [--cycles 10000] [--every 1000] [--pool 16] [--backend nftables|iptables]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inNetns } from '../netns/index.js';
import { decodeResponse, encodeRequest } from '../plugins/daemon/protocol.js';
import { cleanup, netns, opt, repo, sh, tempDir } from './common.js';

const cycles = Number(opt('cycles', '10000'));
const every = Number(opt('every', '1000'));
const poolSize = Number(opt('pool', '16'));
const backend = opt('backend', 'nftables');
const warmup = 50;
const socketName = (JSON.parse(readFileSync(join(repo, 'dist', 'build-info.json'), 'utf8')) as { cniDaemonSocket: string })
  .cniDaemonSocket;

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

/** The daemon, with the probe preloaded; its PID is the Node process's (nsenter execs). */
function startDaemon(): number {
  const daemon = spawn(
    'nsenter',
    [
      `--net=/run/netns/${host}`,
      process.execPath,
      '--expose-gc',
      '--require',
      join(repo, 'bench', 'soak-probe.cjs'),
      join(repo, 'bin', 'ctnet-node'),
      'cni-daemon',
    ],
    { stdio: 'ignore', env: { ...process.env, CTNET_SOAK_PROBE: probeFile } },
  );
  if (daemon.pid === undefined) throw new Error('failed to start the CNI daemon');
  for (let i = 0; i < 200; i++) {
    const unix = spawnSync('nsenter', [`--net=/run/netns/${host}`, 'cat', '/proc/net/unix'], { encoding: 'utf8' });
    if (unix.stdout.includes(socketName)) return daemon.pid;
    spawnSync('sleep', ['0.05']);
  }
  throw new Error('the CNI daemon did not start listening');
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
  throw new Error('the daemon did not answer the memory probe');
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

/** One call as the shim makes it: the socket is made inside the sandbox host, where the daemon's name exists. */
function callDaemon(type: string, command: string, ctr: string, conf: unknown): Promise<string> {
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: ctr,
    CNI_NETNS: `/run/netns/${ctr}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: join(repo, 'bin', 'cni'),
  };
  const request = encodeRequest({ type, cwd: process.cwd(), env, stdin: JSON.stringify(conf) });
  return new Promise((resolve, reject) => {
    const socket = inNetns(`/run/netns/${host}`, () => connect({ path: `\0${socketName.slice(1)}`, allowHalfOpen: true }));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const r = decodeResponse(Buffer.concat(chunks));
      if (!r.served) return reject(new Error(`the daemon declined ${type} ${command}`));
      if (r.exitCode !== 0) return reject(new Error(`${type} ${command} failed: ${r.stdout} ${r.stderr}`));
      resolve(r.stdout);
    });
    socket.end(request);
  });
}

async function cycle(i: number): Promise<void> {
  const ctr = pool[i % pool.length] as string;
  const result = JSON.parse(await callDaemon('bridge', 'ADD', ctr, bridgeConf)) as unknown;
  await callDaemon('portmap', 'ADD', ctr, portmapConf(result));
  await callDaemon('portmap', 'DEL', ctr, portmapConf(result));
  await callDaemon('bridge', 'DEL', ctr, { ...bridgeConf, prevResult: result });
}

let pid: number | undefined;
process.on('exit', () => {
  if (pid !== undefined) process.kill(pid, 'SIGTERM');
});
try {
  pid = startDaemon();
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
  console.log(`\nCNI daemon soak: ${cycles} ADD/DEL cycles of bridge (host-local, ipMasq) + portmap, ${backend} backend,`);
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
