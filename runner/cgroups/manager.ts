/**
 * One cgroup-manager interface with v1, v2 and none implementations (youki/crun style). The
 * runner only sees `CgroupRecord`s: plain data stored in the container state, so a later
 * command (after a crash) can kill, inspect and remove the cgroup without re-detecting anything.
 */
import type { Limits } from './limits.js';

export type CgroupDriver = 'v1' | 'v2' | 'none';

export interface CgroupRecord {
  driver: CgroupDriver;
  /** Every directory made for the container (one per v1 hierarchy, one for v2). */
  dirs: string[];
  /** The `cgroup.procs` files a process writes itself into before it runs the workload. */
  procsFiles: string[];
  /** Where the OOM-kill counter lives (v2 memory.events, v1 memory.oom_control). */
  oomFile?: string;
  /** Parent directories made for ctnet, removed when they become empty. */
  parents: string[];
  /**
   * Where the devices allow-list goes: v1 rules into this devices-controller directory, or a BPF
   * program that ctnet-init attaches to this cgroup v2 directory. Absent: no cgroups to hold it.
   */
  devices?: { kind: 'v1' | 'bpf'; dir: string };
}

export interface CgroupManager {
  readonly driver: CgroupDriver;
  /** Where `parent/name` lives, without making anything (recorded before create, for crash cleanup). */
  describe(parent: string, name: string): CgroupRecord;
  /** Makes the cgroup `parent/name` with its limits; throws (having removed it) on failure. */
  create(parent: string, name: string, limits: Limits): CgroupRecord;
}
