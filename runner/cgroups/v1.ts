/**
 * cgroup v1 (and hybrid hosts): one directory per controller hierarchy. The container always
 * gets a pids, memory and cpu cgroup (even without limits: pids lets us find and kill every
 * process later, memory reports OOM kills). memory.memsw follows memory when swap accounting
 * exists, so --memory is the whole budget, as on v2. The devices allow-list goes into the devices
 * controller, or (CTNET_DEVICES_CGROUP=v2, or no devices controller) into a cgroup of the hybrid
 * host's cgroup2 tree, where ctnet-init attaches it as a BPF program.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, ErrorCode, wrapError } from '../../core/index.js';
import { cpuPeriodUs, cpuQuotaUs, type Limits } from './limits.js';
import type { CgroupManager, CgroupRecord } from './manager.js';
import { destroyCgroup } from './ops.js';

const used = ['pids', 'memory', 'cpu'] as const;

export class V1CgroupManager implements CgroupManager {
  readonly driver = 'v1' as const;
  constructor(
    readonly controllers: Record<string, string>,
    readonly devices: { unified?: string; devices?: 'v1' | 'v2' | 'none' } = {},
  ) {}

  /** Mount points that get a directory: the controllers we use, and where devices are controlled. */
  private mounts(): { controller: string; mount: string }[] {
    const out: { controller: string; mount: string }[] = used.flatMap((c) =>
      this.controllers[c] ? [{ controller: c, mount: this.controllers[c] }] : [],
    );
    const v1Devices = this.controllers.devices;
    if (this.devices.devices === 'none') return out;
    if (v1Devices && this.devices.devices !== 'v2') out.push({ controller: 'devices', mount: v1Devices });
    else if (this.devices.unified) out.push({ controller: 'unified', mount: this.devices.unified });
    return out;
  }

  describe(parent: string, name: string): CgroupRecord {
    const rec: CgroupRecord = { driver: 'v1', dirs: [], procsFiles: [], parents: [] };
    for (const { controller, mount } of this.mounts()) {
      let dir = mount;
      const parents: string[] = [];
      for (const segment of parent.split('/').filter(Boolean)) {
        dir = join(dir, segment);
        parents.unshift(dir);
      }
      rec.parents.push(...parents);
      const leaf = join(dir, name);
      rec.dirs.push(leaf);
      rec.procsFiles.push(join(leaf, 'cgroup.procs'));
      if (controller === 'memory') rec.oomFile = join(leaf, 'memory.oom_control');
      if (controller === 'devices') rec.devices = { kind: 'v1', dir: leaf };
      if (controller === 'unified') rec.devices = { kind: 'bpf', dir: leaf };
    }
    return rec;
  }

  create(parent: string, name: string, limits: Limits): CgroupRecord {
    const rec = this.describe(parent, name);
    try {
      for (const controller of used) {
        if (!this.controllers[controller] && (controller === 'pids' || limitFor(controller, limits))) {
          throw new CtnetError(ErrorCode.notAvailable, `the ${controller} cgroup controller is not mounted`);
        }
      }
      for (const leaf of rec.dirs) {
        mkdirSync(leaf, { recursive: true });
        const controller = used.find((c) => this.controllers[c] && leaf.startsWith(`${this.controllers[c]}/`));
        if (controller) this.applyLimit(controller, leaf, limits);
      }
      return rec;
    } catch (cause) {
      destroyCgroup(rec);
      throw wrapError(`create cgroup ${parent}/${name}`, cause, ErrorCode.io);
    }
  }

  private applyLimit(controller: (typeof used)[number], leaf: string, limits: Limits): void {
    if (controller === 'memory' && limits.memoryBytes !== undefined) {
      writeFileSync(join(leaf, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      const memsw = join(leaf, 'memory.memsw.limit_in_bytes');
      if (existsSync(memsw)) writeFileSync(memsw, String(limits.memoryBytes));
    }
    if (controller === 'cpu' && limits.cpus !== undefined) {
      writeFileSync(join(leaf, 'cpu.cfs_period_us'), String(cpuPeriodUs));
      writeFileSync(join(leaf, 'cpu.cfs_quota_us'), String(cpuQuotaUs(limits.cpus)));
    }
    if (controller === 'pids' && limits.pidsLimit !== undefined) {
      writeFileSync(join(leaf, 'pids.max'), String(limits.pidsLimit));
    }
  }
}

function limitFor(controller: string, limits: Limits): boolean {
  if (controller === 'memory') return limits.memoryBytes !== undefined;
  if (controller === 'cpu') return limits.cpus !== undefined;
  return limits.pidsLimit !== undefined;
}

/** No cgroups at all: limits cannot be honoured, so asking for one is an error. */
export class NoCgroupManager implements CgroupManager {
  readonly driver = 'none' as const;
  describe(): CgroupRecord {
    return { driver: 'none', dirs: [], procsFiles: [], parents: [] };
  }
  create(_parent: string, _name: string, limits: Limits): CgroupRecord {
    if (limits.memoryBytes !== undefined || limits.cpus !== undefined || limits.pidsLimit !== undefined) {
      throw new CtnetError(ErrorCode.notAvailable, 'failed to set resource limits: this host has no usable cgroups');
    }
    return { driver: 'none', dirs: [], procsFiles: [], parents: [] };
  }
}
