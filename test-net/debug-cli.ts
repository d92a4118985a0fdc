/**
 * Helpers for the CLI's integration tests: run `ctnet` from source inside a sandbox host
 * namespace with a CTNET_ROOT of its own, the way a person on that host would.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RunResult, run } from '../core/index.js';
import { netnsPath, repoRoot } from './sandbox.js';

export const cliEntry = join(repoRoot, 'cli', 'main.ts');

export interface CliResult extends RunResult {
  json: unknown;
}

/**
 * The environment of a ctnet run by a test: its own state root, and other runtimes' config directory
 * (NETCONFPATH) inside that root, so nothing of the machine's /etc/cni/net.d is ever read; and `run`
 * never pulls a missing image (CTNET_PULL=never) unless a test asks, so no test reaches out for one.
 */
export function testEnv(root: string, env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, CTNET_ROOT: root, NETCONFPATH: join(root, 'foreign-netconf'), CTNET_PULL: 'never', ...env };
}

/** Runs `ctnet ARGS` in namespace `host` with CTNET_ROOT=root; never throws on a non-zero exit. */
export async function ctnet(host: string, root: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const r = await run('nsenter', [`--net=${netnsPath(host)}`, process.execPath, '--import', 'tsx', cliEntry, ...args], {
    env: testEnv(root, env),
    cwd: repoRoot,
    allowFailure: true,
    timeoutMs: 60_000,
  });
  let json: unknown;
  try {
    json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/** Writes a conflist into `<root>/networks/<name>.conflist`. */
export function writeConflist(root: string, conf: { name: string; [k: string]: unknown }): string {
  const dir = join(root, 'networks');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${conf.name}.conflist`);
  writeFileSync(file, JSON.stringify(conf, null, 2));
  return file;
}
