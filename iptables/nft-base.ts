/**
 * What every part of the nftables backend shares: the names the kernel sees, the base (table, maps, base chains and
 * their static rules, rewritten whole and idempotently), and applying an nft script as one transaction.
 */
import { CtnetError, ErrorCode, log } from '../core/index.js';
import { attachmentHash, parseAttachmentComment } from './attachment.js';
import type { Family } from './cidr.js';
import type { NftExec } from './nft-exec.js';
import { nftSets, setDeclarations } from './nft-sets.js';
import type { AttachmentKey } from './types.js';

/** Names the kernel sees: part of ctnet's on-host contract (iptables/README.md). */
export const nftNames = {
  table: 'ctnet',
  family: 'inet',
  /** nat postrouting base chain: masquerade by the mark, by the masquerade sets. */
  postrouting: 'postrouting',
  /** nat prerouting / output base chains: `fib daddr type local jump hostports`. */
  prerouting: 'prerouting',
  output: 'output',
  /** Dispatch of local destinations by (host address,) protocol and port to per-attachment DNAT chains. */
  hostports: 'hostports',
  /** proto . port → jump dnat-<hash> (mappings on every host address). */
  hostportMap: 'hostports-any',
  /** address . proto . port → jump dnat-<hash> (mappings limited to one hostIP). */
  hostportAddrMap: { 4: 'hostports4', 6: 'hostports6' } as Record<Family, string>,
  /** Per-attachment DNAT chain: prefix + first 20 hex digits of the attachment hash. */
  dnatPrefix: 'dnat-',
  /** filter forward base chain; its first rule jumps to `admin`. */
  forward: 'forward',
  /** The admin's chain, evaluated first in forward: created, never filled or flushed by us. */
  admin: 'admin',
  /** filter input base chain: drops non-loopback packets to 127/8 (what route_localnet would let in). */
  input: 'input',
} as const;

/** The mark bit asking postrouting to masquerade (hairpin and localhost sources); fixed for nft (0x2000). */
export const nftMasqMark = '0x00002000';

export const T = `${nftNames.family} ${nftNames.table}`;
const markForMasquerade = `meta mark set meta mark | ${nftMasqMark}`;
export const ipKeyword: Record<Family, string> = { 4: 'ip', 6: 'ip6' };
const multicast: Record<Family, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };

export function nftDnatChainName(key: AttachmentKey): string {
  return `${nftNames.dnatPrefix}${attachmentHash(key).slice(0, 20)}`;
}

function commentArg(comment: string): string {
  if (!/^[A-Za-z0-9_.@+=% -]+$/.test(comment)) throw new CtnetError(ErrorCode.internal, `unsafe comment ${comment}`);
  return `comment "${comment}"`;
}

export function nftCommentArg(comment: string): string {
  return commentArg(comment);
}

/** Runs one nft script as one transaction. */
export async function nftApply(exec: NftExec, lines: string[]): Promise<void> {
  if (!lines.length) return;
  const script = `${lines.join('\n')}\n`;
  log.debug({ script, driver: exec.driver }, 'nft -f');
  await exec.apply(script);
}

/**
 * The common case of an ADD or DEL in one small transaction that does not name the base: a new attachment's chain
 * made with `create` (which fails when it exists), or an attachment's elements and chain removed by the keys its
 * caller knows. Anything unexpected (no table yet, an earlier ADD of the same attachment, an element held by a
 * stale attachment, an element the caller did not know of) makes the kernel refuse the transaction, which then
 * changes nothing; the caller takes its full path, which reads what is there and rewrites the base. Leaving the
 * base out keeps the base chains' rules from being replaced on every ADD, and the table from being validated
 * more than the change needs. True when the fast transaction went through.
 */
export async function tryFastPath(exec: NftExec, lines: string[], what: string): Promise<boolean> {
  try {
    await nftApply(exec, lines);
    return true;
  } catch (err) {
    log.debug({ err, what }, 'nft fast path refused; taking the full path');
    return false;
  }
}

/**
 * The idempotent base, part of every transaction: table, maps, chains; base chains hold only static rules and are
 * flushed and re-added (so a transaction never duplicates them). `admin` is only ever created (`add chain` of an
 * existing chain changes nothing), never flushed.
 */
export function baseLines(): string[] {
  const N = nftNames;
  const S = nftSets;
  const base = (name: string, spec: string) => [`add chain ${T} ${name} { ${spec}; policy accept; }`, `flush chain ${T} ${name}`];
  return [
    `add table ${T}`,
    // Verdict maps of attachments with a chain of their own (forwards with conditions).
    `add map ${T} ${N.hostportMap} { type inet_proto . inet_service : verdict; }`,
    `add map ${T} ${N.hostportAddrMap[4]} { type ipv4_addr . inet_proto . inet_service : verdict; }`,
    `add map ${T} ${N.hostportAddrMap[6]} { type ipv6_addr . inet_proto . inet_service : verdict; }`,
    ...setDeclarations(T),
    `add chain ${T} ${N.hostports}`,
    `flush chain ${T} ${N.hostports}`,
    `add rule ${T} ${N.hostports} ip daddr . meta l4proto . th dport vmap @${N.hostportAddrMap[4]}`,
    `add rule ${T} ${N.hostports} ip6 daddr . meta l4proto . th dport vmap @${N.hostportAddrMap[6]}`,
    `add rule ${T} ${N.hostports} meta l4proto . th dport vmap @${N.hostportMap}`,
    // Hairpin: marked before DNAT, while the published address and port are still the packet's.
    `add rule ${T} ${N.hostports} iifname . meta l4proto . th dport @${S.hairpin} ${markForMasquerade}`,
    `add rule ${T} ${N.hostports} iifname . ip daddr . meta l4proto . th dport @${S.hairpinAddr[4]} ${markForMasquerade}`,
    `add rule ${T} ${N.hostports} iifname . ip6 daddr . meta l4proto . th dport @${S.hairpinAddr[6]} ${markForMasquerade}`,
    // A mapping limited to one host address first: it is the more specific.
    `add rule ${T} ${N.hostports} dnat ip to ip daddr . meta l4proto . th dport map @${S.fwdAddr[4]}`,
    `add rule ${T} ${N.hostports} dnat ip6 to ip6 daddr . meta l4proto . th dport map @${S.fwdAddr[6]}`,
    `add rule ${T} ${N.hostports} dnat ip to meta l4proto . th dport map @${S.fwd[4]}`,
    `add rule ${T} ${N.hostports} dnat ip6 to meta l4proto . th dport map @${S.fwd[6]}`,
    ...base(N.prerouting, 'type nat hook prerouting priority dstnat'),
    `add rule ${T} ${N.prerouting} fib daddr type local jump ${N.hostports}`,
    ...base(N.output, 'type nat hook output priority -100'),
    // [::1] is left to the host's own stack: the kernel routes no packet from ::1 to another host (IPv6 has no
    // route_localnet), so DNATing it to a container would leave the client hanging instead of refused.
    `add rule ${T} ${N.output} ip6 daddr ::1 return`,
    `add rule ${T} ${N.output} fib daddr type local jump ${N.hostports}`,
    ...base(N.postrouting, 'type nat hook postrouting priority srcnat'),
    `add rule ${T} ${N.postrouting} meta mark & ${nftMasqMark} == ${nftMasqMark} masquerade`,
    `add rule ${T} ${N.postrouting} ct status dnat ip saddr 127.0.0.0/8 ip daddr @${S.localhost4} masquerade`,
    `add rule ${T} ${N.postrouting} ct status dnat ip daddr @${S.masqAll[4]} masquerade`,
    `add rule ${T} ${N.postrouting} ct status dnat ip6 daddr @${S.masqAll[6]} masquerade`,
    `add rule ${T} ${N.postrouting} ip daddr != ${multicast[4]} ip saddr @${S.masqSource[4]} ip saddr . oifname != @${S.masqLocal[4]} masquerade`,
    `add rule ${T} ${N.postrouting} ip6 daddr != ${multicast[6]} ip6 saddr @${S.masqSource[6]} ip6 saddr . oifname != @${S.masqLocal[6]} masquerade`,
    `add chain ${T} ${N.admin}`,
    ...base(N.forward, 'type filter hook forward priority filter'),
    `add rule ${T} ${N.forward} jump ${N.admin}`,
    // Isolation between networks: from one isolated bridge to another, unless it stays on one bridge.
    `add rule ${T} ${N.forward} iifname @${S.isolated} oifname @${S.isolated} iifname . oifname != @${S.isolatedSelf} drop`,
    ...base(N.input, 'type filter hook input priority filter'),
    `add rule ${T} ${N.input} ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct state != { established, related } ct status ! dnat drop ${commentArg('ctnet drop non-loopback to loopback net for route_localnet')}`,
  ];
}

/**
 * GC: the attachment chains (`prefix`, named by `nameOf`) in a `list table` text that belong to
 * `network` and are not in `keep`. A chain counts only when its comment names an attachment whose
 * chain name is this one, so a chain we did not make is never collected.
 */
export function staleChains(
  text: string,
  network: string,
  keep: Set<string>,
  prefix: string,
  nameOf: (key: AttachmentKey) => string,
): Set<string> {
  const stale = new Set<string>();
  for (const block of text.split(/\n\tchain /).slice(1)) {
    const name = block.match(/^(\S+) \{/)?.[1];
    if (!name?.startsWith(prefix) || keep.has(name)) continue;
    const comment = block.match(/comment "([^"]*)"/)?.[1];
    const owner = comment ? parseAttachmentComment(comment) : undefined;
    if (owner?.key.network === network && nameOf(owner.key) === name) stale.add(name);
  }
  return stale;
}
