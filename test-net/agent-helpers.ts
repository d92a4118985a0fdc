/** Starting `ctnet agent` in a sandbox host namespace and reading its log (the agent-*.test.ts files). */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { netnsPath, repoRoot } from './sandbox.js';

export const ctnet = join(repoRoot, 'bin', 'ctnet');

export interface Agent {
  child: ChildProcess;
  logFile: string;
  /** The agent's log lines with this message. */
  entries(msg: string): Record<string, unknown>[];
  exited: Promise<number | null>;
}

/**
 * Starts `ctnet agent` in `host` (`opts.nsenter`: more nsenter options, e.g. a pid namespace) with a debug log of
 * its own; teardown stops it by pid.
 */
export async function startAgent(
  t: ExecutionContext,
  host: string,
  dir: string,
  args: string[] = [],
  env: Record<string, string> = {},
  opts: { nsenter?: string[] } = {},
): Promise<Agent> {
  const logFile = join(dir, `agent-${Math.random().toString(16).slice(2)}.log`);
  const child = spawn('nsenter', [...(opts.nsenter ?? []), `--net=${netnsPath(host)}`, ctnet, 'agent', ...args], {
    env: { ...process.env, CTNET_LOG_LEVEL: 'debug', CTNET_LOG_FILE: logFile, ...env },
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
    child.once('exit', (code) => reject(new Error(`agent exited (${code}): ${stderr}`)));
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

export function bridgeConf(dataDir: string) {
  return {
    cniVersion: '1.1.0',
    name: 'agentnet',
    type: 'bridge',
    bridge: 'ctd0',
    isGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.77.0.0/24' }]] },
  };
}
