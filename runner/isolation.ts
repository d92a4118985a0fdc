/**
 * The container's isolation defaults that the runner decides (ctnet-init carries them out):
 * the capability set, the devices allow-list, and the seccomp choice from `--security-opt`.
 * Each is Docker's default; docs/runner.md lists them beside Docker's.
 */
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CtnetError, ErrorCode } from '../core/index.js';
import {
  compileSeccomp,
  defaultSeccompProfile,
  hostSeccompTarget,
  parseSeccompProfile,
  type SeccompProfile,
} from './seccomp/profile.js';

/** Docker's default capabilities (ctnet-init.c's default_caps holds the same set by number). */
export const defaultCapabilities = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const;

export interface DeviceRule {
  type: 'c' | 'b';
  /** undefined: any. */
  major?: number;
  minor?: number;
  access: string;
}

/**
 * Every device is denied but these (Docker's list: the nodes of the container's /dev, the
 * console, ptmx and the pty slaves, and /dev/net/tun). Docker also lets any device node be
 * created (`c *:* m`, `b *:* m`) though none can be opened; ctnet refuses the mknod as well.
 */
export const allowedDevices: readonly DeviceRule[] = [
  { type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { type: 'c', major: 5, minor: 1, access: 'rwm' }, // console
  { type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { type: 'c', major: 136, access: 'rwm' }, // pty slaves (/dev/pts/N)
  { type: 'c', major: 10, minor: 200, access: 'rwm' }, // net/tun
];

const num = (n: number | undefined) => (n === undefined ? '*' : String(n));

/** cgroup v1 `devices.allow` lines: "c 1:3 rwm". */
export function v1DeviceRule(r: DeviceRule): string {
  return `${r.type} ${num(r.major)}:${num(r.minor)} ${r.access}`;
}

/** ctnet-init's --device-allow values (the cgroup v2 program): "c:1:3:rwm". */
export function helperDeviceRule(r: DeviceRule): string {
  return `${r.type}:${num(r.major)}:${num(r.minor)}:${r.access}`;
}

/** `--preserve-fds N`: a count of descriptors after stderr. */
export function parsePreserveFds(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 1000) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid --preserve-fds "${text}": expected a count of descriptors`);
  }
  return n;
}

/** What `--security-opt seccomp=…` chose; stored with the container. */
export type SeccompChoice = { kind: 'default' } | { kind: 'unconfined' } | { kind: 'custom'; profile: SeccompProfile };

export interface SecurityOptions {
  seccomp: SeccompChoice;
}

/**
 * Docker's `--security-opt` values that apply here: `seccomp=unconfined`, `seccomp=FILE.json`
 * (read now, relative to `cwd`), `no-new-privileges[=true]` (always on). Anything else is refused.
 */
export function parseSecurityOpts(values: readonly string[], cwd: string): SecurityOptions {
  const out: SecurityOptions = { seccomp: { kind: 'default' } };
  for (const value of values) {
    const [key, ...rest] = value.split(/[=:]/);
    const arg = value.slice((key ?? '').length + 1);
    if (key === 'seccomp' && rest.length) {
      if (arg === 'unconfined') out.seccomp = { kind: 'unconfined' };
      else if (arg === 'builtin' || arg === 'default') out.seccomp = { kind: 'default' };
      else {
        let text: string;
        try {
          text = readFileSync(resolve(cwd, arg), 'utf8');
        } catch (err) {
          throw new CtnetError(ErrorCode.invalidConfig, `opening seccomp profile (${arg}) failed: ${(err as Error).message}`);
        }
        out.seccomp = { kind: 'custom', profile: parseSeccompProfile(text, arg) };
      }
    } else if (key === 'no-new-privileges' && (rest.length === 0 || arg === 'true')) {
      /* every container has no_new_privs */
    } else {
      throw new CtnetError(
        ErrorCode.invalidConfig,
        `invalid --security-opt "${value}": ctnet supports seccomp=unconfined|PROFILE.json and no-new-privileges`,
      );
    }
  }
  return out;
}

/** The filter for ctnet-init, resolved for this host (a bad custom profile throws); undefined: unconfined. */
export function seccompFilterText(choice: SeccompChoice = { kind: 'default' }): string | undefined {
  if (choice.kind === 'unconfined') return undefined;
  const profile = choice.kind === 'custom' ? choice.profile : defaultSeccompProfile;
  return compileSeccomp(profile, hostSeccompTarget(defaultCapabilities));
}

/** cgroup v1: deny every device, then allow the list (a new leaf has no children, so this takes). */
export function applyV1DeviceRules(dir: string): void {
  writeFileSync(join(dir, 'devices.deny'), 'a');
  // The kernel takes one rule per write(2); one open serves them all.
  const fd = openSync(join(dir, 'devices.allow'), 'w');
  try {
    for (const r of allowedDevices) writeSync(fd, v1DeviceRule(r));
  } finally {
    closeSync(fd);
  }
}
