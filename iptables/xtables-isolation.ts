/**
 * Isolation between networks in the iptables backend (Docker's model), in the filter table of each family:
 *
 *   FORWARD            -j CTNET-ISOLATION-1                    (one jump: right after CTNET-ADMIN's, else first)
 *   CTNET-ISOLATION-1  -i <br> ! -o <br> -j CTNET-ISOLATION-2  (per isolated network)
 *   CTNET-ISOLATION-2  -o <br> -j DROP                         (per isolated network)
 *
 * so a packet leaving one isolated bridge for another is dropped, while traffic to the uplink passes. A network's
 * rules are added and removed one by one (each carries `ctnet isolation net=<network>`), so concurrent changes of
 * different networks do not undo each other; a batch computed from what was listed is refused whole when the chains
 * changed meanwhile, and is then computed again. The last network's teardown removes the jump and both chains.
 */
import { log } from '../core/index.js';
import { isolationComment, isolationNetworkOf } from './attachment.js';
import type { NetworkIsolation } from './types.js';
import { commentArg, commentOf, type XtablesFamily } from './xtables-family.js';

/** Chain names: part of the on-host contract (iptables/README.md). */
export const isolationChains = { first: 'CTNET-ISOLATION-1', second: 'CTNET-ISOLATION-2' } as const;

const C = isolationChains;

/** The network's two rules in the form `iptables -S` prints them. */
function rulesOf(net: NetworkIsolation): { first: string; second: string } {
  const c = commentArg(isolationComment(net.network));
  return {
    first: `-A ${C.first} -i ${net.bridge} ! -o ${net.bridge} ${c} -j ${C.second}`,
    second: `-A ${C.second} -o ${net.bridge} ${c} -j DROP`,
  };
}

interface Listing {
  forward: string[];
  first: string[] | undefined;
  second: string[] | undefined;
}

async function list(fam: XtablesFamily): Promise<Listing> {
  const [forward, first, second] = await Promise.all([
    fam.listChain('filter', 'FORWARD'),
    fam.listChain('filter', C.first),
    fam.listChain('filter', C.second),
  ]);
  return { forward: forward ?? [], first, second };
}

const jumps = (forward: string[]) => forward.filter((l) => l.endsWith(` -j ${C.first}`));
const onBridge = (rule: string, bridge: string) => rule.includes(` -o ${bridge} `);

/** Where the jump goes: right after the admin chain's jump (the admin's rules come first), else first. */
function jumpPosition(forward: string[]): number {
  return forward.findIndex((l) => / -j CTNET-ADMIN$/.test(l)) + 2;
}

function setupBatch(l: Listing, net: NetworkIsolation): string[] {
  const want = rulesOf(net);
  const lines: string[] = [];
  if (!l.first) lines.push(`-N ${C.first}`);
  if (!l.second) lines.push(`-N ${C.second}`);
  // Keyed by the bridge: its rules are replaced unless they are exactly the wanted ones (a rule of an earlier layout
  // has no comment; a bridge may have moved to a network of another name).
  for (const [have, rule] of [
    [l.first ?? [], want.first],
    [l.second ?? [], want.second],
  ] as const) {
    const mine = have.filter((r) => onBridge(r, net.bridge));
    if (mine.length === 1 && mine[0] === rule) continue;
    lines.push(...mine.map((r) => `-D ${r.slice(3)}`), rule);
  }
  if (!jumps(l.forward).length) lines.push(`-I FORWARD ${jumpPosition(l.forward)} -j ${C.first}`);
  return lines;
}

function teardownBatch(l: Listing, net: NetworkIsolation): string[] {
  const first = l.first ?? [];
  const second = l.second ?? [];
  const gone = [...first, ...second].filter((r) => onBridge(r, net.bridge));
  const lines = gone.map((r) => `-D ${r.slice(3)}`);
  if (gone.length === first.length + second.length) {
    lines.push(...jumps(l.forward).map((r) => `-D ${r.slice(3)}`));
    if (l.first) lines.push(`-F ${C.first}`, `-X ${C.first}`);
    if (l.second) lines.push(`-F ${C.second}`, `-X ${C.second}`);
  }
  return lines;
}

/** Lists, computes a batch and applies it; a batch refused because the chains changed meanwhile is computed again. */
async function change(fam: XtablesFamily, batch: (l: Listing) => string[], what: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const lines = batch(await list(fam));
    if (!lines.length) return;
    try {
      await fam.restore({ filter: lines });
      return;
    } catch (err) {
      if (attempt >= 3) throw err;
      log.debug({ err, family: fam.family, what }, 'isolation batch refused; listing again');
    }
  }
}

export function setupIsolation(fam: XtablesFamily, net: NetworkIsolation): Promise<void> {
  return change(fam, (l) => setupBatch(l, net), `isolate ${net.bridge}`);
}

export function teardownIsolation(fam: XtablesFamily, net: NetworkIsolation): Promise<void> {
  return change(fam, (l) => teardownBatch(l, net), `end isolation of ${net.bridge}`);
}

/** The isolated networks of one family (from CTNET-ISOLATION-2) and whether FORWARD jumps to the chains. */
export async function readIsolation(fam: XtablesFamily): Promise<{ networks: NetworkIsolation[]; hooked: boolean }> {
  const l = await list(fam);
  return { networks: isolatedIn(l.second ?? []), hooked: jumps(l.forward).length > 0 };
}

/** The networks that rules of CTNET-ISOLATION-2 (as `-S` or save lines) isolate. */
export function isolatedIn(rules: string[]): NetworkIsolation[] {
  const out: NetworkIsolation[] = [];
  for (const r of rules) {
    const bridge = /-o (\S+) .*-j DROP$/.exec(r)?.[1];
    if (bridge && !out.some((n) => n.bridge === bridge)) out.push({ network: isolationNetworkOf(commentOf(r) ?? ''), bridge });
  }
  return out;
}
