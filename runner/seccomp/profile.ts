/**
 * Seccomp profiles in Docker's JSON format (its default profile is `default.json` here, as
 * published), resolved for this machine the way Docker resolves them: rules included or excluded
 * by architecture, by the container's capabilities and by kernel version; the native architecture
 * plus its sub-architectures from `archMap`. The result is the plain line format ctnet-init reads
 * (runner/helper/isolation.c, seccomp_compile_file), one rule a line:
 *
 *   default ACTION ERRNO
 *   arch NAME                                     (libseccomp's names: x86_64, x86, x32, aarch64…)
 *   rule ACTION ERRNO SYSCALL N [INDEX OP VALUE VALUE2]×N
 */
import { arch as nodeArch, release } from 'node:os';
import { CtnetError, ErrorCode } from '../../core/index.js';
import defaultProfileJson from './default.json' with { type: 'json' };

interface Filter {
  arches?: string[] | null;
  caps?: string[] | null;
  minKernel?: string | null;
}

interface ArgRule {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

interface SyscallRule {
  names?: string[] | null;
  name?: string;
  action: string;
  errnoRet?: number | null;
  args?: ArgRule[] | null;
  includes?: Filter | null;
  excludes?: Filter | null;
}

export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number | null;
  architectures?: string[] | null;
  archMap?: { architecture: string; subArchitectures: string[] | null }[] | null;
  syscalls?: SyscallRule[] | null;
}

export const defaultSeccompProfile = defaultProfileJson as SeccompProfile;

/** What a profile is resolved against. */
export interface SeccompTarget {
  /** Go's architecture names, as profiles use them in includes/excludes (amd64, arm64…). */
  arch: string;
  /** SCMP_ARCH_* of this machine. */
  scmpArch: string;
  /** The container's capabilities, CAP_* names. */
  caps: readonly string[];
  /** Kernel release, e.g. "6.18.4". */
  kernel: string;
}

const archByNode: Record<string, [string, string]> = {
  x64: ['amd64', 'SCMP_ARCH_X86_64'],
  arm64: ['arm64', 'SCMP_ARCH_AARCH64'],
  arm: ['arm', 'SCMP_ARCH_ARM'],
  ia32: ['386', 'SCMP_ARCH_X86'],
  s390x: ['s390x', 'SCMP_ARCH_S390X'],
  riscv64: ['riscv64', 'SCMP_ARCH_RISCV64'],
  ppc64: ['ppc64le', 'SCMP_ARCH_PPC64LE'],
};

export function hostSeccompTarget(caps: readonly string[]): SeccompTarget {
  const [arch, scmpArch] = archByNode[nodeArch()] ?? [nodeArch(), `SCMP_ARCH_${nodeArch().toUpperCase()}`];
  return { arch, scmpArch, caps, kernel: release() };
}

const actions: Record<string, string> = {
  SCMP_ACT_ALLOW: 'allow',
  SCMP_ACT_ERRNO: 'errno',
  SCMP_ACT_KILL: 'kill_thread',
  SCMP_ACT_KILL_THREAD: 'kill_thread',
  SCMP_ACT_KILL_PROCESS: 'kill_process',
  SCMP_ACT_TRAP: 'trap',
  SCMP_ACT_LOG: 'log',
  SCMP_ACT_TRACE: 'trace',
};

const ops: Record<string, string> = {
  SCMP_CMP_NE: 'ne',
  SCMP_CMP_LT: 'lt',
  SCMP_CMP_LE: 'le',
  SCMP_CMP_EQ: 'eq',
  SCMP_CMP_GE: 'ge',
  SCMP_CMP_GT: 'gt',
  SCMP_CMP_MASKED_EQ: 'masked_eq',
};

const EPERM = 1;

function invalid(message: string): CtnetError {
  return new CtnetError(ErrorCode.invalidConfig, `invalid seccomp profile: ${message}`);
}

function action(name: string, errnoRet: number | null | undefined): string {
  const a = actions[name];
  if (!a) throw invalid(`unsupported action "${name}"`);
  // The errno (ERRNO) or message (TRACE); Docker's default for both is EPERM.
  return `${a} ${a === 'errno' || a === 'trace' ? (errnoRet ?? EPERM) : 0}`;
}

/** "6.18.44-fc" ≥ "4.8"? Compares the numeric major.minor(.patch) parts. */
export function kernelAtLeast(kernel: string, min: string): boolean {
  const parse = (v: string) => (/^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v) ?? []).slice(1, 4).map((n) => Number(n ?? 0));
  const [a, b] = [parse(kernel), parse(min)];
  if (b.some(Number.isNaN) || b.length === 0) throw invalid(`invalid minKernel "${min}"`);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

function applies(rule: SyscallRule, target: SeccompTarget): boolean {
  const inc = rule.includes ?? {};
  const exc = rule.excludes ?? {};
  if (inc.arches?.length && !inc.arches.includes(target.arch)) return false;
  if (inc.caps?.length && !inc.caps.every((c) => target.caps.includes(c))) return false;
  if (inc.minKernel && !kernelAtLeast(target.kernel, inc.minKernel)) return false;
  if (exc.arches?.length && exc.arches.includes(target.arch)) return false;
  if (exc.caps?.length && exc.caps.some((c) => target.caps.includes(c))) return false;
  if (exc.minKernel) throw invalid('"minKernel" is not supported in excludes');
  return true;
}

function scmpArchName(scmp: string): string {
  return scmp.replace(/^SCMP_ARCH_/, '').toLowerCase();
}

/** Resolves a profile for the target into ctnet-init's line format. */
export function compileSeccomp(profile: SeccompProfile, target: SeccompTarget): string {
  if (typeof profile !== 'object' || profile === null || typeof profile.defaultAction !== 'string') {
    throw invalid('"defaultAction" is missing');
  }
  if (profile.architectures?.length && profile.archMap?.length) {
    throw invalid('"architectures" and "archMap" cannot both be given');
  }
  const lines = [`default ${action(profile.defaultAction, profile.defaultErrnoRet)}`];
  let arches = profile.architectures ?? [];
  const mapped = profile.archMap?.find((m) => m.architecture === target.scmpArch);
  if (mapped) arches = [mapped.architecture, ...(mapped.subArchitectures ?? [])];
  for (const a of arches) lines.push(`arch ${scmpArchName(a)}`);
  for (const rule of profile.syscalls ?? []) {
    const names = rule.names?.length ? rule.names : rule.name ? [rule.name] : [];
    if (names.length === 0) throw invalid('a rule names no syscall');
    if (!applies(rule, target)) continue;
    const act = action(rule.action, rule.errnoRet);
    const args = (rule.args ?? []).map((a) => {
      const op = ops[a.op];
      if (!op) throw invalid(`unsupported operator "${a.op}" for ${names.join(',')}`);
      if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5)
        throw invalid(`argument index ${a.index} of ${names.join(',')}`);
      for (const v of [a.value, a.valueTwo ?? 0]) {
        if (!Number.isInteger(v) || v < 0) throw invalid(`argument value ${v} of ${names.join(',')} is not an unsigned integer`);
      }
      return `${a.index} ${op} ${BigInt(a.value ?? 0)} ${BigInt(a.valueTwo ?? 0)}`;
    });
    if (args.length > 6) throw invalid(`more than 6 conditions for ${names.join(',')}`);
    for (const name of names) {
      if (!/^[a-z0-9_]+$/.test(name)) throw invalid(`invalid syscall name "${name}"`);
      lines.push(`rule ${act} ${name} ${args.length}${args.map((a) => ` ${a}`).join('')}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** A profile file's text (Docker's format), checked for shape. */
export function parseSeccompProfile(text: string, source: string): SeccompProfile {
  let profile: unknown;
  try {
    profile = JSON.parse(text);
  } catch (err) {
    throw invalid(`${source} is not JSON: ${(err as Error).message}`);
  }
  if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) throw invalid(`${source} is not an object`);
  const p = profile as SeccompProfile;
  if (typeof p.defaultAction !== 'string') throw invalid(`${source} has no "defaultAction"`);
  if (p.syscalls != null && !Array.isArray(p.syscalls)) throw invalid(`${source}: "syscalls" is not a list`);
  return p;
}
