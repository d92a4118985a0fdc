/**
 * What the CNI benchmarks share: command-line options, sandbox namespaces named ctb-… (removed at
 * the end, also on Ctrl-C), temp dirs, and the statistics they print.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const repo = resolve(import.meta.dirname, '..');

const args = process.argv.slice(2);
/** `--name value` from the command line, else `dflt`. */
export function opt(name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? (args[i + 1] as string) : dflt;
}

const created: string[] = [];
const dirs: string[] = [];

/** Removes every namespace and directory made so far. */
export function cleanup(): void {
  stopAgents();
  for (const ns of created.splice(0)) spawnSync('ip', ['netns', 'del', ns]);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

export function sh(cmd: string, argv: string[]): string {
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A fresh sandbox namespace (ctb-<random>-<role>), removed by cleanup(). */
export function netns(role: string): string {
  const name = `ctb-${randomBytes(3).toString('hex')}-${role}`;
  sh('ip', ['netns', 'add', name]);
  created.push(name);
  return name;
}

/** Registers a directory for cleanup(). */
export function tempDir(dir: string): string {
  dirs.push(dir);
  return dir;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
export const p90 = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.9))] ?? Number.NaN;
};
/** A figure in ms, right-aligned in 7 columns. */
export const f = (x: number): string => x.toFixed(1).padStart(7);

/**
 * CPU time (user + system, ms) of this process's reaped children so far: every process a plugin call runs (nsenter,
 * the plugin, what it spawns) is counted once it has been waited for. The kernel reports it in clock ticks (10 ms),
 * so a difference across many calls, not one call's, is meaningful. On a loaded machine it is steadier than the wall
 * clock, which then measures the wait for a CPU as much as the work.
 */
export function childCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command name: state is field 3 of proc(5), cutime 16 and cstime 17.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / clockTicks;
}
const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * One plugin call as a runtime makes it, inside the sandbox host `host`, for the container
 * namespace `ctr` (also its container ID), interface eth0. Returns the wall time and stdout.
 */
export function callPlugin(
  dir: string,
  plugin: string,
  host: string,
  command: string,
  ctr: string,
  stdin: string,
  extraEnv: Record<string, string> = {},
): { ms: number; stdout: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('nsenter', [`--net=/run/netns/${host}`, join(dir, plugin)], {
    input: stdin,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: ctr,
      CNI_NETNS: `/run/netns/${ctr}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: dir,
      ...extraEnv,
    },
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${join(dir, plugin)} ${command} failed: ${r.stdout} ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

const agents: number[] = [];
process.on('exit', () => stopAgents());

/** Stops the agents startAgent started (by PID). */
export function stopAgents(): void {
  for (const pid of agents.splice(0)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
}

/**
 * Starts the resident process of the build in `checkout` (default: this one) inside the sandbox `host`:
 * `ctnet agent`, or `ctnet cni-daemon` of a build from before the agent, so bin/cni/* hand their calls
 * to it; waits until it listens. Stopped by stopAgents() or when the benchmark exits.
 */
export function startAgent(host: string, checkout = repo): number {
  const info = JSON.parse(readFileSync(join(checkout, 'dist', 'build-info.json'), 'utf8')) as {
    agentSocket?: string;
    cniDaemonSocket?: string;
  };
  const socket = info.agentSocket ?? info.cniDaemonSocket;
  if (!socket) throw new Error(`the build in ${checkout} has no C shim (no C compiler at build time?)`);
  const command = info.agentSocket ? 'agent' : 'cni-daemon';
  // CTNET_BENCH_CPU_PROF=<dir>: the agent writes a V8 CPU profile there when it stops (SIGTERM).
  const profile = process.env.CTNET_BENCH_CPU_PROF;
  const program = profile
    ? [process.execPath, '--cpu-prof', `--cpu-prof-dir=${profile}`, join(checkout, 'bin', 'ctnet-node')]
    : [join(checkout, 'bin', 'ctnet')];
  const child = spawn('nsenter', [`--net=/run/netns/${host}`, ...program, command], {
    stdio: 'ignore',
    detached: true,
  });
  child.unref();
  if (child.pid === undefined) throw new Error(`failed to start ctnet ${command}`);
  agents.push(child.pid);
  for (let i = 0; i < 200; i++) {
    const listening = spawnSync('nsenter', [`--net=/run/netns/${host}`, 'cat', '/proc/net/unix'], { encoding: 'utf8' });
    if (listening.stdout.includes(socket)) return child.pid;
    spawnSync('sleep', ['0.05']);
  }
  throw new Error(`ctnet ${command} did not start listening on ${socket}`);
}
