/** Shared pieces of the iptables backend: chain names (on-host contract), one family's programs, rule-text helpers. */
import { CtnetError, ErrorCode, log, run } from '../core/index.js';
import { attachmentHash } from './attachment.js';
import type { Family } from './cidr.js';
import type { AttachmentKey } from './types.js';
import type { XtablesPrograms } from './xtables-tools.js';

/**
 * Chain names the kernel sees: part of ctnet's on-host contract (documented in iptables/README.md).
 * Built-in chains get exactly one jump each into our base chains; per-attachment chains hang off those.
 */
export const xtablesChains = {
  /** nat: jumped from POSTROUTING; holds one `-s <container> -j CTNET-M-…` per masqueraded address. */
  postrouting: 'CTNET-POSTROUTING',
  /** filter: first rule of FORWARD; the admin's chain (like DOCKER-USER). Created, never filled or flushed by us. */
  admin: 'CTNET-ADMIN',
  /** Per-attachment masquerade chain: prefix + first 20 hex digits of the attachment hash (28 chars, the limit). */
  masqPrefix: 'CTNET-M-',
  /** nat: jumped from PREROUTING and OUTPUT for local destinations; one multiport jump per attachment and protocol. */
  hostports: 'CTNET-HOSTPORTS',
  /** nat: jumped from POSTROUTING; `-m mark --mark <bit> -j MASQUERADE` (hairpin and localhost sources). */
  hostportMasq: 'CTNET-HOSTPORT-MASQ',
  /** filter (IPv4): jumped from INPUT; drops non-loopback packets to 127/8 that route_localnet would let in. */
  input: 'CTNET-INPUT',
  /** Per-attachment DNAT chain: prefix + first 19 hex digits of the attachment hash (28 chars). */
  dnatPrefix: 'CTNET-DN-',
} as const;

export const restoreWaitSeconds = 10;
export const timeoutMs = 20_000;

export function masqChainName(key: AttachmentKey): string {
  return `${xtablesChains.masqPrefix}${attachmentHash(key).slice(0, 20).toUpperCase()}`;
}

export function dnatChainName(key: AttachmentKey): string {
  return `${xtablesChains.dnatPrefix}${attachmentHash(key).slice(0, 19).toUpperCase()}`;
}

/** One address family's programs with the few primitives the backend needs. */
export class XtablesFamily {
  constructor(
    readonly family: Family,
    private readonly programs: XtablesPrograms,
  ) {}

  /**
   * `-S` of one chain: its rules as restore lines, or undefined when the chain does not exist. `existsOnly` lists
   * just rule 1 (for chains that may be long, when only their existence matters).
   */
  async listChain(table: string, chain: string, existsOnly = false): Promise<string[] | undefined> {
    const args = ['-w', String(restoreWaitSeconds), '-t', table, '-S', chain, ...(existsOnly ? ['1'] : [])];
    const r = await run(this.programs.iptables, args, {
      allowFailure: true,
      timeoutMs,
    });
    if (r.code === 0) return r.stdout.split('\n').filter((l) => l.startsWith('-A '));
    if (/No chain\/target\/match|does not exist|incompatible/i.test(r.stderr)) return undefined;
    throw new CtnetError(
      ErrorCode.internal,
      `failed to list chain ${chain} (table ${table}, IPv${this.family}): ${r.stderr.trim()}`,
    );
  }

  /** `iptables -C`: whether the rule (restore syntax without -A) exists. */
  async check(table: string, rule: string): Promise<boolean> {
    const args = ['-w', String(restoreWaitSeconds), '-t', table, '-C', ...splitRule(rule)];
    const r = await run(this.programs.iptables, args, { allowFailure: true, timeoutMs });
    return r.code === 0;
  }

  /** Every table with packet counters (`-save -c`); '' when the program fails (no tables, no module). */
  async saveWithCounters(): Promise<string> {
    const r = await run(this.programs.save, ['-c'], { allowFailure: true, timeoutMs }).catch(() => undefined);
    return r?.code === 0 ? r.stdout : '';
  }

  async save(table: string): Promise<string[]> {
    const r = await run(this.programs.save, ['-t', table], { timeoutMs });
    return r.stdout.split('\n');
  }

  /**
   * Whether every rule (restore syntax without the verb) exists, in one `-C` batch. Kept out of the batches that
   * add: a `-C` makes iptables-nft-restore fetch the rules of every chain its batch names, and an attachment's batch
   * names the shared chain that holds a jump per container. Alone, it fetches only the small chains it checks.
   */
  async holds(table: string, rules: string[]): Promise<boolean> {
    try {
      await this.restore({ [table]: rules.map((r) => `-C ${r}`) });
      return true;
    } catch (err) {
      log.debug({ err, family: this.family, rules }, 'sentinel rules missing');
      return false;
    }
  }

  /**
   * An ADD's fast path: the batch `lines` (refused whole when the attachment's chain exists already) and, beside it,
   * holds(`sentinel`). False when either failed: the caller's full path then repairs the base and replaces whatever
   * the batch made.
   */
  async addBesideSentinel(table: string, lines: string[], sentinel: string[], what: string): Promise<boolean> {
    const [made, based] = await Promise.all([
      this.restore({ [table]: lines }).then(
        () => true,
        (err) => {
          log.debug({ err, family: this.family, what }, 'fast path refused; taking the full path');
          return false;
        },
      ),
      this.holds(table, sentinel),
    ]);
    return made && based;
  }

  /** Applies one batch; `tables` maps table name → lines (without the *table/COMMIT framing). */
  async restore(tables: Record<string, string[]>): Promise<void> {
    let text = '';
    for (const [table, lines] of Object.entries(tables)) {
      if (lines.length) text += `*${table}\n${lines.join('\n')}\nCOMMIT\n`;
    }
    if (!text) return;
    log.debug({ family: this.family, batch: text }, 'iptables-restore');
    await run(this.programs.restore, ['--noflush', '-w', String(restoreWaitSeconds)], { input: text, timeoutMs });
  }
}

/** The restore-syntax comment argument; comments only ever hold [A-Za-z0-9_.@+=%-] and spaces (attachment.ts). */
export function commentArg(comment: string): string {
  if (!/^[A-Za-z0-9_.@+=% -]+$/.test(comment)) throw new CtnetError(ErrorCode.internal, `unsafe comment ${comment}`);
  return `-m comment --comment "${comment}"`;
}

export function commentOf(line: string): string | undefined {
  return line.match(/--comment "([^"]*)"/)?.[1] ?? line.match(/--comment (\S+)/)?.[1];
}

export function sourceOf(line: string): string | undefined {
  return line.match(/(?:^|\s)-s (\S+)/)?.[1];
}

/** Splits restore-syntax rule text into argv, honouring double quotes (our comments are the only quoted part). */
export function splitRule(rule: string): string[] {
  const out: string[] = [];
  for (const m of rule.matchAll(/"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? '');
  return out;
}
