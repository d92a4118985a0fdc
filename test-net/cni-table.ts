/**
 * One machinery for the tables that run the same CNI calls against the reference plugins and ours: each
 * implementation gets its own sandbox "worlds" (a host namespace, a container namespace, a temp dir for
 * IPAM data and portmap claims); the cases of a table are spread over a few worlds that run at once, and the
 * cases of one world run one after the other, so the state a case leaves is that case's.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { cniBinDir, createNetns, netnsPath, referenceCniDir, tempDir } from './sandbox.js';

export type Impl = 'reference' | 'ours';
export const binDirs: Record<Impl, string> = { reference: referenceCniDir, ours: cniBinDir };

export interface World {
  impl: Impl;
  host: string;
  container: string;
  dir: string;
}

export async function makeWorld(t: ExecutionContext, impl: Impl): Promise<World> {
  const [host, container] = await Promise.all([createNetns(t, 'th'), createNetns(t, 'tc')]);
  return { impl, host, container, dir: tempDir(t, `table-${impl}`) };
}

/** What a case sets; `undefined` leaves a CNI variable out. Strings may use {ns}, {dir}, {id}, {ifname}. */
export interface CallSpec {
  command?: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  unset?: ('CNI_COMMAND' | 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_PATH')[];
}

export interface Outcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
  timedOut: boolean;
  ms: number;
}

/** Generous: a plugin call takes tens of ms, but seconds on a machine shared by many test runs. */
export const callTimeoutMs = 30_000;

/** Placeholders a case uses so one table serves every world: {dir} the world's temp dir, {ns} its container. */
export function fill<T>(value: T, w: World, vars: Record<string, string> = {}): T {
  const all: Record<string, string> = { dir: w.dir, ns: netnsPath(w.container), ...vars };
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const out = text.replace(/\{(dir|ns|id|ifname)\}/g, (m, k: string) => all[k] ?? m);
  return (typeof value === 'string' ? out : JSON.parse(out)) as T;
}

/** Executes one plugin in the world's host namespace with a deadline; a plugin past it is killed and reported. */
export function callPlugin(w: World, plugin: string, call: CallSpec, stdin: string | Buffer): Promise<Outcome> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    CTNET_RUN_DIR: join(w.dir, 'run'),
    CNI_COMMAND: call.command ?? 'ADD',
    CNI_CONTAINERID: call.containerId ?? 'ctr1',
    CNI_NETNS: call.netns ?? netnsPath(w.container),
    CNI_IFNAME: call.ifname ?? 'eth0',
    CNI_PATH: call.path ?? binDirs[w.impl],
    ...(call.args !== undefined && { CNI_ARGS: call.args }),
  };
  for (const k of call.unset ?? []) delete env[k];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=${netnsPath(w.host)}`, join(binDirs[w.impl], plugin)], { env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, callTimeoutMs);
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    // A plugin that exits before reading all of a large stdin closes the pipe: that is its answer, not an error.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ exitCode: code ?? -1, stdout, stderr, json, timedOut, ms: Date.now() - started });
    });
  });
}

function capture(ns: string, script: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, 'sh', '-c', script]);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('close', () => resolve(out));
  });
}

// Names, addresses, routes, rules and sets: what a plugin call may leave. Link flags, MTUs and counters change
// on their own or with the bridge's ports, and are left out.
const kernelScript = [
  "ip -o link show | sed -E 's/^[0-9]+: ([^:]+):.*master ([^ ]+).*/\\1 master \\2/; s/^[0-9]+: ([^:]+):.*/\\1/'",
  "ip -o addr show | sed -E 's/ valid_lft.*//; s/ (tentative|optimistic|dadfailed)//g; s/^[0-9]+: //'",
  'ip route show table all; ip -6 route show table all',
  "iptables-save 2>/dev/null | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]//'",
  "ip6tables-save 2>/dev/null | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]//'",
  "/usr/sbin/nft list ruleset 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'",
].join('; echo ---; ');

/**
 * Files under dir with their contents. Not state: lock files, empty directories, and host-local's bookkeeping
 * (the reference's allocation cursor last_reserved_ip.N, our owner index) that only steers or speeds up the next call.
 */
const bookkeeping = /^(lock|last_reserved_ip\.\d+|ctnet-owners)$/;

function fileState(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const p = join(d, n);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (!bookkeeping.test(n)) out.push(`${p.slice(dir.length)}: ${readFileSync(p, 'utf8').slice(0, 200)}`);
    }
  };
  walk(dir);
  return out;
}

export interface WorldState {
  kernel: string;
  files: string[];
}

export async function worldState(w: World): Promise<WorldState> {
  const [host, container] = await Promise.all([capture(w.host, kernelScript), capture(w.container, kernelScript)]);
  return { kernel: `${host}\n=== container\n${container}`, files: fileState(w.dir) };
}

/** What changed between two states, as lines: empty when nothing did. */
export function stateDiff(before: WorldState, after: WorldState): string[] {
  const lines = (s: WorldState) => [...s.kernel.split('\n'), ...s.files.map((f) => `file ${f}`)];
  const a = new Set(lines(before));
  const b = new Set(lines(after));
  return [...[...b].filter((l) => !a.has(l)).map((l) => `+ ${l}`), ...[...a].filter((l) => !b.has(l)).map((l) => `- ${l}`)];
}

/** Runs `work` for every case, on `workers` worlds per implementation at once; results in case order. */
export async function runTable<C, R>(
  t: ExecutionContext,
  impls: readonly Impl[],
  cases: readonly C[],
  workers: number,
  work: (w: World, c: C, index: number) => Promise<R>,
): Promise<Record<Impl, R[]>> {
  const results = { reference: [] as R[], ours: [] as R[] };
  await Promise.all(
    impls.flatMap((impl) =>
      Array.from({ length: workers }, async (_, k) => {
        const w = await makeWorld(t, impl);
        for (let i = k; i < cases.length; i += workers) results[impl][i] = await work(w, cases[i] as C, i);
      }),
    ),
  );
  return results;
}

/** A CNI error as the spec has it: JSON on stdout with a numeric code and a message, and a non-zero exit. */
export function isCleanError(o: Outcome): boolean {
  return (
    !o.timedOut &&
    o.exitCode !== 0 &&
    o.json !== undefined &&
    typeof o.json.code === 'number' &&
    typeof o.json.msg === 'string' &&
    o.json.msg.length > 0
  );
}
