/**
 * Which iptables programs to run. Debian ships both variants (xtables-legacy-multi, xtables-nft-multi) behind
 * `alternatives`; we use the variant the system's `iptables` points to, through its explicit name when present,
 * so save/restore and the listing agree on one variant.
 */
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { Family } from './cidr.js';

export type XtablesVariant = 'nft' | 'legacy';

export interface XtablesPrograms {
  iptables: string;
  save: string;
  restore: string;
}

export interface XtablesTools {
  variant: XtablesVariant;
  family: Record<Family, XtablesPrograms>;
}

/**
 * PATH, or the usual system directories when the caller gave no PATH at all. Package-manager bin directories are
 * skipped: `npx` puts node_modules/.bin first, and an npm package ships a program called `nft` (a file tracer).
 */
const searchDirs = (): string[] => {
  const path = (process.env.PATH ?? '').split(':').filter((d) => d && !d.includes('/node_modules/'));
  return path.length ? path : ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];
};

export function findProgram(name: string): string | undefined {
  for (const dir of searchDirs()) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Finds the iptables programs, or undefined when iptables is not installed. Costs a few stat calls, no exec. */
export function detectXtables(): XtablesTools | undefined {
  const iptables = findProgram('iptables');
  if (!iptables) return undefined;
  let target = iptables;
  try {
    target = realpathSync(iptables);
  } catch {
    /* a dangling alternatives link: fall through with the plain names */
  }
  const variant: XtablesVariant = /legacy/.test(target) ? 'legacy' : 'nft';
  const pick = (explicit: string, plain: string) => findProgram(explicit) ?? findProgram(plain) ?? plain;
  const programs = (v4: boolean): XtablesPrograms => {
    const base = v4 ? 'iptables' : 'ip6tables';
    return {
      iptables: pick(`${base}-${variant}`, base),
      save: pick(`${base}-${variant}-save`, `${base}-save`),
      restore: pick(`${base}-${variant}-restore`, `${base}-restore`),
    };
  };
  return { variant, family: { 4: programs(true), 6: programs(false) } };
}
