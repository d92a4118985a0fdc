/**
 * Which cgroup layout the host has, from /proc/self/mountinfo: pure v2 (cgroup2 on the root),
 * v1 or hybrid (v1 controllers mounted per hierarchy; a hybrid host's cgroup2 tree has no
 * controllers, so limits go through v1), or none. CTNET_CGROUP_DRIVER=none overrides; on a
 * hybrid host CTNET_DEVICES_CGROUP=v2 puts the devices allow-list on the cgroup2 tree (none: off).
 */
import { readFileSync } from 'node:fs';
import type { CgroupDriver, CgroupManager } from './manager.js';
import { NoCgroupManager, V1CgroupManager } from './v1.js';
import { V2CgroupManager } from './v2.js';

export type DevicesMode = 'v1' | 'v2' | 'none';

export interface CgroupLayout {
  driver: CgroupDriver;
  /** v2: the unified mount point; v1: the directory holding one mount per controller. */
  root: string;
  /** v1: controller name → mount point. */
  controllers: Record<string, string>;
  /** v1 (hybrid): the cgroup2 mount beside the controllers, where a devices program can attach. */
  unified?: string;
  /**
   * CTNET_DEVICES_CGROUP: v2 on a hybrid host puts the devices allow-list on the cgroup2 tree (a
   * BPF program) instead of the v1 devices controller; none leaves devices uncontrolled (for hosts
   * where neither can be used, and to measure what the allow-list costs).
   */
  devices?: DevicesMode;
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
  if (controllers.pids || controllers.memory) {
    return { driver: 'v1', root: '/sys/fs/cgroup', controllers, ...(unified ? { unified } : {}) };
  }
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
  const devices = env.CTNET_DEVICES_CGROUP;
  if (devices === 'v1' || devices === 'v2' || devices === 'none') layout.devices = devices;
  return layout;
}

export function cgroupManager(layout: CgroupLayout = detectCgroups()): CgroupManager {
  switch (layout.driver) {
    case 'v2':
      return new V2CgroupManager(layout.root, { devices: layout.devices });
    case 'v1':
      return new V1CgroupManager(layout.controllers, { unified: layout.unified, devices: layout.devices });
    default:
      return new NoCgroupManager();
  }
}
