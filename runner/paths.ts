/**
 * The runner's part of the state root (see network/paths.ts for the shared layout: networks,
 * leases, CNI result cache, containers). Names below are part of the on-host contract.
 */
import { dirname, join, resolve } from 'node:path';
import { type CtnetPaths, ctnetPaths, ctnetRoot } from '../network/index.js';

export interface RunnerPaths extends CtnetPaths {
  /** `names/<name>` → container id (symlinks). */
  names: string;
  /** Network namespace files, one bind mount per container: `netns/<id>`. */
  netns: string;
  /** `images/<name>/rootfs` and `images/<name>/image.json`. */
  images: string;
  /** `seccomp/<hash>.bpf`: the BPF program ctnet-init made from a seccomp filter, shared by equal filters. */
  seccomp: string;
}

export function runnerPaths(root = ctnetRoot()): RunnerPaths {
  return {
    ...ctnetPaths(root),
    names: join(root, 'names'),
    netns: join(root, 'netns'),
    images: join(root, 'images'),
    seccomp: join(root, 'seccomp'),
  };
}

/** The compiled helper: CTNET_INIT, else bin/ctnet-init beside the CLI (dist/ or cli/ → ../bin). */
export function helperPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.CTNET_INIT || resolve(dirname(process.argv[1] ?? '.'), '..', 'bin', 'ctnet-init');
}

/** The command the monitor runs after a detached container exits: this very CLI. */
export function cliCommand(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1] ?? 'ctnet'];
}
