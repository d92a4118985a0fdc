/**
 * What every container command runs with: the state root's paths, the cgroup driver, the CNI executor, the caller's
 * environment and stdio, and how signals for a foreground container reach it.
 */
import { DefaultExecutor, type Executor } from '../core/index.js';
import { builtinPlugins } from '../plugins/index.js';
import { type CgroupManager, cgroupManager, detectCgroups } from './cgroups/index.js';
import { type RunnerPaths, runnerPaths } from './paths.js';

export interface RunnerContext {
  paths: RunnerPaths;
  cgroups: CgroupManager;
  /** Parent of every container cgroup (CTNET_CGROUP_PARENT, default "ctnet"). */
  cgroupParent: string;
  executor(): Promise<Executor>;
  /** Starts loading built-in plugins of these types (overlaps module loading with the helper's start). */
  preload(types: readonly string[]): void;
  /** The caller's environment (`-e NAME` without a value copies NAME from it). */
  env: NodeJS.ProcessEnv;
  /**
   * A foreground container's stdio: the caller's (inherited), or these descriptors (the agent's caller's:
   * stdin is used with -i).
   */
  stdio?: { in?: number; out: number; err: number };
  /**
   * Calls `forward` with each signal meant for a foreground container until the returned function
   * is called. The CLI passes on what is sent to it alone (the terminal's SIGINT reaches the
   * container's monitor directly, in the same process group).
   */
  signals(forward: (signal: NodeJS.Signals) => void): () => void;
  /** Start every container in a session of its own (a daemon's process group is not the user's). */
  ownSession?: boolean;
  /**
   * How long a container may take from its record to its start (the agent sets it; image pulls come before and do
   * not count). Past it the run fails at once, and a start that completes after all is undone.
   */
  setupDeadlineMs?: number;
}

function processSignals(forward: (signal: NodeJS.Signals) => void): () => void {
  // SIGWINCH: the monitor may run in a session of its own, where the terminal's resize does not reach it.
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGWINCH'] as const).map(
    (s) => [s, () => (s === 'SIGINT' ? undefined : forward(s))] as const,
  );
  for (const [s, h] of handlers) process.on(s, h);
  return () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
}

export function defaultContext(env: NodeJS.ProcessEnv = process.env): RunnerContext {
  let executor: Executor | undefined;
  return {
    paths: runnerPaths(),
    cgroups: cgroupManager(detectCgroups(env)),
    cgroupParent: env.CTNET_CGROUP_PARENT || 'ctnet',
    async executor() {
      executor ??= new DefaultExecutor(builtinPlugins);
      return executor;
    },
    preload(types) {
      for (const type of types) builtinPlugins[type]?.().catch(() => undefined);
    },
    env,
    signals: processSignals,
  };
}
