/**
 * cgroup v2: one directory per container under `<root>/<parent>`; controllers enabled down the
 * path through cgroup.subtree_control. The root is a parameter so unit tests use a temp dir.
 * Conversions as crun does: memory → memory.max (+ memory.swap.max 0: --memory is the whole
 * budget), cpus → cpu.max "quota period", pids → pids.max.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CtnetError, ErrorCode, wrapError } from '../../core/index.js';
import { cpuPeriodUs, cpuQuotaUs, type Limits } from './limits.js';
import type { CgroupManager, CgroupRecord } from './manager.js';
import { destroyCgroup } from './ops.js';

const wanted = ['cpu', 'memory', 'pids'];

export class V2CgroupManager implements CgroupManager {
  readonly driver = 'v2' as const;
  constructor(
    readonly root: string,
    readonly options: { devices?: 'v1' | 'v2' | 'none' } = {},
  ) {}

  /** Enables our controllers in `dir`'s subtree_control (those `dir` has at all). */
  private enableControllers(dir: string): void {
    let available: string[];
    try {
      available = readFileSync(join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    } catch {
      return;
    }
    const enable = wanted.filter((c) => available.includes(c));
    if (enable.length === 0) return;
    const current = readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/);
    if (enable.every((c) => current.includes(c))) return;
    writeFileSync(join(dir, 'cgroup.subtree_control'), enable.map((c) => `+${c}`).join(' '));
  }

  describe(parent: string, name: string): CgroupRecord {
    let dir = this.root;
    const parents: string[] = [];
    for (const segment of parent.split('/').filter(Boolean)) {
      dir = join(dir, segment);
      parents.unshift(dir);
    }
    const leaf = join(dir, name);
    return {
      driver: 'v2',
      dirs: [leaf],
      procsFiles: [join(leaf, 'cgroup.procs')],
      oomFile: join(leaf, 'memory.events'),
      parents,
      ...(this.options.devices === 'none' ? {} : { devices: { kind: 'bpf' as const, dir: leaf } }),
    };
  }

  create(parent: string, name: string, limits: Limits): CgroupRecord {
    const rec = this.describe(parent, name);
    const leaf = rec.dirs[0] as string;
    try {
      this.enableControllers(this.root);
      for (const dir of [...rec.parents].reverse()) {
        if (!existsSync(dir)) mkdirSync(dir);
        this.enableControllers(dir);
      }
      mkdirSync(leaf);
      this.applyLimits(leaf, limits);
      return rec;
    } catch (cause) {
      destroyCgroup(rec);
      throw wrapError(`create cgroup ${leaf}`, cause, ErrorCode.io);
    }
  }

  applyLimits(leaf: string, limits: Limits): void {
    const write = (file: string, value: string) => {
      const path = join(leaf, file);
      if (!existsSync(path)) {
        throw new CtnetError(ErrorCode.notAvailable, `failed to set ${file}: the controller is not available in ${leaf}`);
      }
      writeFileSync(path, value);
    };
    if (limits.memoryBytes !== undefined) {
      write('memory.max', String(limits.memoryBytes));
      if (existsSync(join(leaf, 'memory.swap.max'))) writeFileSync(join(leaf, 'memory.swap.max'), '0');
    }
    if (limits.cpus !== undefined) write('cpu.max', `${cpuQuotaUs(limits.cpus)} ${cpuPeriodUs}`);
    if (limits.pidsLimit !== undefined) write('pids.max', String(limits.pidsLimit));
  }
}
