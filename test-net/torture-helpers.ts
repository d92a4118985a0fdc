/**
 * Helpers for the torture suite (test-net/torture-*.test.ts): a seeded random source whose seed every test
 * prints (set CTNET_TORTURE_SEED to replay a run), the agent started in a sandbox host namespace
 * (the one place that knows their command lines), plugin calls that can be killed mid-way, and the inventory
 * of everything an attachment may leave on a host.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { nftAttachmentLeftovers, rulesetSnapshot } from './firewall-fixtures.js';
import { netnsPath, nsRun, type PluginCall, type PluginOutcome, repoRoot } from './sandbox.js';

const ctnetBin = join(repoRoot, 'bin', 'ctnet');

/** A small seeded generator (mulberry32): the same seed gives the same trials. */
export function seededRandom(t: ExecutionContext, label: string): () => number {
  const fromEnv = Number(process.env.CTNET_TORTURE_SEED);
  let seed = Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : Math.floor(Math.random() * 0x7fffffff) + 1;
  t.log(`${label}: seed ${seed} (CTNET_TORTURE_SEED=${seed} replays it)`);
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Resident {
  pid: number;
  child: ChildProcess;
  exited: Promise<void>;
  /** kill -9, and wait until it is gone. */
  kill9(): Promise<void>;
}

/**
 * The resident agent (`ctnet agent`: CNI calls and `ctnet run`) serving the sandbox host namespace `host`, for
 * the shims called there and for the state root in `opts.env` (CTNET_ROOT). `wrap` runs it under another program
 * first (e.g. `nsenter --mount=…` for a mount namespace of the test's own). Teardown kills it by PID.
 */
export async function startAgent(
  t: ExecutionContext,
  host: string,
  opts: { env?: NodeJS.ProcessEnv; wrap?: string[] } = {},
): Promise<Resident> {
  return startResident(t, host, [...(opts.wrap ?? []), ctnetBin, 'agent'], /serving @/, opts.env ?? process.env);
}

async function startResident(
  t: ExecutionContext,
  host: string,
  command: string[],
  ready: RegExp,
  env: NodeJS.ProcessEnv,
): Promise<Resident> {
  const child = spawn('nsenter', [`--net=${netnsPath(host)}`, ...command], {
    env,
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill9 = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  t.teardown(kill9);
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (ready.test(stderr)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${command.join(' ')} exited (${code}): ${stderr}`)));
  });
  return { pid: child.pid as number, child, exited, kill9 };
}

/** A plugin call (as runPlugin makes it) that the test may kill -9; nsenter execs the plugin, so the PID is its. */
export interface KillableCall {
  pid: number;
  done: Promise<PluginOutcome & { signal: NodeJS.Signals | null }>;
  kill9(): void;
}

export function startPlugin(host: string, binary: string, call: PluginCall, conf: unknown, wrap: string[] = []): KillableCall {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    CNI_COMMAND: call.command,
    CNI_PATH: call.path ?? join(repoRoot, 'bin', 'cni'),
    ...(call.containerId !== undefined && { CNI_CONTAINERID: call.containerId }),
    ...(call.netns !== undefined && { CNI_NETNS: call.netns }),
    ...(call.ifname !== undefined && { CNI_IFNAME: call.ifname }),
    ...(call.args !== undefined && { CNI_ARGS: call.args }),
    ...call.extraEnv,
  };
  const child = spawn(
    wrap[0] ?? 'nsenter',
    [...wrap.slice(1), ...(wrap.length ? ['nsenter'] : []), `--net=${netnsPath(host)}`, binary],
    {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  child.stdin.on('error', () => undefined); // killed before it read its input
  child.stdin.end(typeof conf === 'string' ? conf : JSON.stringify(conf));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<PluginOutcome & { signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ exitCode: code ?? -1, signal, stdout, stderr, json });
    });
  });
  return { pid: child.pid as number, done, kill9: () => child.kill('SIGKILL') };
}

/** Everything one attachment can leave on the sandbox host and in its container namespace. */
export interface Inventory {
  /** veth links on the host (the bridge's ports and half-made pairs). */
  hostVeths: string[];
  /** Links in the container namespace other than lo. */
  containerLinks: string[];
  /** Lease files (named by an address) in the network's lease directory. */
  leases: string[];
  /** Per-attachment firewall state: iptables chains and nft chains and set/map elements. */
  rules: string[];
  /** portmap's host-port claims and attachment records. */
  reservations: string[];
}

export async function inventory(opts: {
  host: string;
  containerNs?: string;
  leaseDir: string;
  portmapStateDir?: string;
}): Promise<Inventory> {
  const links = async (ns: string) =>
    (await nsRun(ns, 'ip', ['-o', 'link', 'show'])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => (l.split(': ')[1] ?? '').split('@')[0] as string);
  const snap = await rulesetSnapshot(opts.host);
  const rules = [...new Set([...snap.matchAll(/CTNET-(?:DN|M)-[0-9A-F]+/g)].map((m) => m[0]))];
  rules.push(...nftAttachmentLeftovers(snap));
  const list = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
  const reservations: string[] = [];
  if (opts.portmapStateDir) {
    for (const d of list(join(opts.portmapStateDir, 'ports'))) {
      reservations.push(...list(join(opts.portmapStateDir, 'ports', d)).map((f) => `ports/${d}/${f}`));
    }
    reservations.push(...list(join(opts.portmapStateDir, 'attachments')).map((f) => `attachments/${f}`));
  }
  return {
    hostVeths: (await links(opts.host)).filter((l) => l.startsWith('veth')),
    containerLinks: opts.containerNs ? (await links(opts.containerNs)).filter((l) => l !== 'lo') : [],
    leases: list(opts.leaseDir).filter((f) => /^[0-9a-f.:]+$/.test(f) && /[.:]/.test(f)),
    rules,
    reservations,
  };
}

export const nothing: Inventory = { hostVeths: [], containerLinks: [], leases: [], rules: [], reservations: [] };

/** Sums what an inventory holds (for the "leaks" figure). */
export function leakCount(inv: Inventory): number {
  return Object.values(inv).reduce((n, list: string[]) => n + list.length, 0);
}
