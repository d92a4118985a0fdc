/**
 * Which cgroup layout the host has, from /proc/self/mountinfo: pure v2 (cgroup2 on the root),
 * v1 or hybrid (v1 controllers mounted per hierarchy; a hybrid host's cgroup2 tree has no
 * controllers, so limits go through v1), or none. CTNET_CGROUP_DRIVER=none|v1|v2 overrides.
 */
import { readFileSync } from 'node:fs';
import type { CgroupDriver, CgroupManager } from './manager.js';
import { NoCgroupManager, V1CgroupManager } from './v1.js';
import { V2CgroupManager } from './v2.js';

export interface CgroupLayout {
  driver: CgroupDriver;
  /** v2: the unified mount point; v1: the directory holding one mount per controller. */
  root: string;
  /** v1: controller name → mount point. */
  controllers: Record<string, string>;
}

export function parseCgroupLayout(mountinfo: string): CgroupLayout {
  const controllers: Record<string, string> = {};
  let unified: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const mountPoint = left[4];
    const fstype = right[0];
    if (!mountPoint) continue;
    if (fstype === 'cgroup2') {
      if (unified === undefined || mountPoint === '/sys/fs/cgroup') unified = mountPoint;
    } else if (fstype === 'cgroup') {
      for (const opt of (right[2] ?? '').split(',')) {
        if (['memory', 'cpu', 'pids', 'cpuacct', 'cpuset', 'freezer', 'devices', 'blkio'].includes(opt)) {
          controllers[opt] ??= mountPoint;
        }
      }
    }
  }
  if (unified === '/sys/fs/cgroup' && Object.keys(controllers).length === 0) {
    return { driver: 'v2', root: unified, controllers };
  }
  if (controllers.pids || controllers.memory) return { driver: 'v1', root: '/sys/fs/cgroup', controllers };
  if (unified) return { driver: 'v2', root: unified, controllers };
  return { driver: 'none', root: '', controllers };
}

export function detectCgroups(env: NodeJS.ProcessEnv = process.env): CgroupLayout {
  let layout: CgroupLayout;
  try {
    layout = parseCgroupLayout(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    layout = { driver: 'none', root: '', controllers: {} };
  }
  const forced = env.CTNET_CGROUP_DRIVER;
  if (forced === 'none') return { ...layout, driver: 'none' };
  return layout;
}

export function cgroupManager(layout: CgroupLayout = detectCgroups()): CgroupManager {
  switch (layout.driver) {
    case 'v2':
      return new V2CgroupManager(layout.root);
    case 'v1':
      return new V1CgroupManager(layout.controllers);
    default:
      return new NoCgroupManager();
  }
}
