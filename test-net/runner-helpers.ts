/**
 * Helpers for the runner's integration tests: a busybox image in a temp dir, a state root and a
 * cgroup parent per test, the CLI run inside the sandbox host namespace, and a leftover check
 * (containers, names, netns files, cgroups, veths) that every test ends with.
 */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { type RunResult, run } from '../core/index.js';
import { testEnv } from './debug-cli.js';
import { nftBin } from './firewall-fixtures.js';
import { netnsPath, nsRun, randomSuffix, repoRoot } from './sandbox.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export const busybox = '/bin/busybox';

/** The runner's C helper is a build product: build it when this checkout has not yet (ava before hook). */
export function ensureInitHelper(): void {
  const out = join(repoRoot, 'bin', 'ctnet-init');
  const sources = ['ctnet-init.c', 'isolation.c', 'tty.c'].map((f) => join(repoRoot, 'runner', 'helper', f));
  if (!existsSync(out)) execFileSync('gcc', ['-O2', '-static', '-o', out, ...sources, '-lseccomp']);
}

/** A root filesystem holding only busybox and its applet links (relative, so they work inside). */
export async function busyboxRootfs(t: Teardown): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ctt-img-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  const applets = (await run(busybox, ['--list'])).stdout.split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', join(dir, 'bin', a));
  mkdirSync(join(dir, 'etc'));
  writeFileSync(
    join(dir, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n',
  );
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\napp:x:1000:\n');
  return dir;
}

export interface RunnerEnv {
  root: string;
  cgroupParent: string;
  host: string;
  env: NodeJS.ProcessEnv;
}

/** Per-test state root and cgroup parent; teardown kills what is left by pid and removes both. */
export function runnerEnv(t: Teardown, host: string): RunnerEnv {
  const root = mkdtempSync(join(tmpdir(), 'ctt-root-'));
  const cgroupParent = `ctt-${randomSuffix()}`;
  const env = {
    ...testEnv(root),
    CTNET_CGROUP_PARENT: cgroupParent,
    CTNET_INIT: join(repoRoot, 'bin', 'ctnet-init'),
  };
  const renv = { root, cgroupParent, host, env };
  t.teardown(async () => {
    await killAll(renv);
    for (const f of safeList(join(root, 'netns'))) await run('umount', ['-l', join(root, 'netns', f)], { allowFailure: true });
    removeCgroupParent(cgroupParent);
    rmSync(root, { recursive: true, force: true });
  });
  return renv;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

async function killAll(renv: RunnerEnv): Promise<void> {
  for (const id of safeList(join(renv.root, 'containers'))) {
    try {
      const rec = JSON.parse(readFileSync(join(renv.root, 'containers', id, 'container.json'), 'utf8'));
      if (rec.state.pid) process.kill(rec.state.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const pid of cgroupPids(renv.cgroupParent)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await new Promise((r) => setTimeout(r, 100));
}

/** Every hierarchy a container's cgroup may be made in (the devices allow-list: v1 devices, or the cgroup2 tree). */
const v1Controllers = ['pids', 'memory', 'cpu', 'devices', 'unified'];

export function cgroupDirs(parent: string): string[] {
  const out: string[] = [];
  for (const c of v1Controllers) {
    const dir = join('/sys/fs/cgroup', c, parent);
    if (existsSync(dir)) {
      out.push(dir);
      for (const child of readdirSync(dir, { withFileTypes: true })) if (child.isDirectory()) out.push(join(dir, child.name));
    }
  }
  return out;
}

function cgroupPids(parent: string): number[] {
  const pids: number[] = [];
  for (const dir of cgroupDirs(parent)) {
    try {
      pids.push(...readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number));
    } catch {
      /* gone */
    }
  }
  return pids;
}

function removeCgroupParent(parent: string): void {
  for (const dir of cgroupDirs(parent).reverse()) {
    try {
      rmdirSync(dir);
    } catch {
      /* still busy: nothing more we may do */
    }
  }
}

/** Runs the CLI inside the sandbox host namespace (the runner's "host"). */
export async function ctnet(
  renv: RunnerEnv,
  args: string[],
  opts: { allowFailure?: boolean; timeoutMs?: number; bundle?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const cli =
    opts.bundle || process.env.CTNET_TEST_CLI === 'bundle'
      ? [join(repoRoot, 'bin', 'ctnet')]
      : [process.execPath, '--import', 'tsx', join(repoRoot, 'cli', 'main.ts')];
  return run('nsenter', [`--net=${netnsPath(renv.host)}`, ...cli, ...args], {
    env: opts.env ?? renv.env,
    allowFailure: opts.allowFailure,
    timeoutMs: opts.timeoutMs ?? 60_000,
    cwd: repoRoot,
  });
}

/** Everything the runner may leave behind; all empty after rm/--rm. */
export function leftovers(renv: RunnerEnv): {
  containers: string[];
  names: string[];
  netns: string[];
  cgroups: string[];
  mounts: string[];
} {
  return {
    // Mounts of the host that point into the state root (netns files, a leaked overlay).
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(renv.root)),
    containers: safeList(join(renv.root, 'containers')),
    names: safeList(join(renv.root, 'names')),
    netns: safeList(join(renv.root, 'netns')),
    cgroups: cgroupDirs(renv.cgroupParent).filter(
      (d) => !v1Controllers.some((c) => d === join('/sys/fs/cgroup', c, renv.cgroupParent)),
    ),
  };
}

export const nothingLeft = { containers: [], names: [], netns: [], cgroups: [], mounts: [] };

export interface InspectView {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number; OOMKilled: boolean };
  NetworkSettings: { SandboxKey: string; IPAddress: string; Ports: Record<string, { HostIp: string; HostPort: string }[]> };
}

export async function inspect(renv: RunnerEnv, ref: string): Promise<InspectView> {
  const r = await ctnet(renv, ['inspect', ref]);
  return (JSON.parse(r.stdout) as InspectView[])[0] as InspectView;
}

/** The sandbox host's links, ctnet's per-container firewall rules and the default network's leases. */
export async function snapshot(renv: RunnerEnv): Promise<{ links: string[]; rules: string[]; leases: string[] }> {
  const links = (await nsRun(renv.host, 'ip', ['-o', 'link', 'show'])).stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => (l.split(': ')[1] ?? '').split('@')[0] as string)
    .sort();
  // The default network names the nftables backend where libnftables is installed, iptables elsewhere.
  const xtables = (await nsRun(renv.host, 'iptables-save', [])).stdout.split('\n').filter((l) => l.startsWith('-A'));
  const nft = (await nsRun(renv.host, nftBin, ['list', 'ruleset'])).stdout.split('\n').map((l) => l.trim());
  const rules = [...xtables, ...nft].filter((l) => /id=/.test(l));
  const leaseDir = join(renv.root, 'ipam', 'ctnet');
  const leases = existsSync(leaseDir) ? readdirSync(leaseDir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
  return { links, rules, leases };
}

/**
 * The snapshot once the kernel has destroyed the namespaces of removed containers: the runner unpins a
 * container's namespace and lets the kernel delete its veth asynchronously (runner/network.ts retireNetns).
 */
export async function settledSnapshot(renv: RunnerEnv, ms = 5000): Promise<Awaited<ReturnType<typeof snapshot>>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = await snapshot(renv);
    if (!s.links.some((l) => l.startsWith('veth')) || Date.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Asserts that every container is gone with all it held: veths (once the kernel has destroyed their
 * namespaces), per-container rules, leases, port reservations, and the runner's own state.
 */
export async function assertAllReleased(t: ExecutionContext, renv: RunnerEnv): Promise<void> {
  const after = await settledSnapshot(renv);
  t.deepEqual(
    after.links.filter((l) => l.startsWith('veth')),
    [],
    'no veth left',
  );
  t.deepEqual(after.leases, [], 'no lease left');
  t.deepEqual(after.rules, [], 'no per-container rule left');
  const ports = join(renv.root, 'portmap', 'ports');
  t.deepEqual(existsSync(ports) ? readdirSync(ports) : [], [], 'no port reservation left');
  t.deepEqual(leftovers(renv), nothingLeft);
}

/** `ctnet agent` (bin/ctnet) in the sandbox host, with the environment of the runs it serves; teardown ends it by pid. */
export async function startRunnerAgent(
  t: Teardown,
  renv: RunnerEnv,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; socket: string; stderrText(): string }> {
  const child = spawn('nsenter', [`--net=${netnsPath(renv.host)}`, join(repoRoot, 'bin', 'ctnet'), 'agent', ...args], {
    env: { ...renv.env, ...env },
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  });
  let stderr = '';
  const socket = await new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /serving @(ctnet-agent-[0-9a-z-]+)/.exec(stderr);
      if (m?.[1]) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`ctnet agent exited with ${code}: ${stderr}`)));
  });
  return { child, socket, stderrText: () => stderr };
}

/** The parent pid of a process (from /proc/PID/stat). */
export function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}
