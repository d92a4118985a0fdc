/**
 * Port forwards on the iptables backend. Per attachment and family: one chain CTNET-DN-<hash> in nat with, per
 * mapping, the masquerade marks (hairpin from the container subnet, localhost from 127/8) and the DNAT; one
 * multiport jump per protocol (≤15 ports each) from CTNET-HOSTPORTS. The jumps are rebuilt from the chain's own
 * DNAT rules at teardown, so teardown needs neither mappings nor addresses.
 */
import { CtnetError, ErrorCode, log, wrapError } from '../core/index.js';
import { attachmentComment, attachmentLabel, parseAttachmentComment, validateKey } from './attachment.js';
import type { Family } from './cidr.js';
import { type FamilyForward, markHex, type NormalizedForwards, normalizeForwards } from './forwards.js';
import type { AttachmentKey, KnownForwards, PortForwardSpec } from './types.js';
import { commentArg, commentOf, dnatChainName, type XtablesFamily, xtablesChains } from './xtables-family.js';

const C = xtablesChains;
const loopbackNet = '127.0.0.0/8';
const ipv6Loopback = '::1/128';

interface Jump {
  line: string;
}

function target(family: Family, address: string, port: number): string {
  return family === 4 ? `${address}:${port}` : `[${address}]:${port}`;
}

/** Multiport jumps from CTNET-HOSTPORTS, one per protocol and 15 ports, in first-appearance order. */
function renderJumps(chain: string, comment: string, forwards: { protocol: string; hostPort: number }[]): Jump[] {
  const byProto = new Map<string, number[]>();
  for (const f of forwards) {
    const ports = byProto.get(f.protocol) ?? [];
    if (!ports.includes(f.hostPort)) ports.push(f.hostPort);
    byProto.set(f.protocol, ports);
  }
  const jumps: Jump[] = [];
  for (const [proto, ports] of byProto) {
    for (let i = 0; i < ports.length; i += 15) {
      const list = ports.slice(i, i + 15).join(',');
      jumps.push({ line: `${C.hostports} -p ${proto} -m multiport --dports ${list} ${commentArg(comment)} -j ${chain}` });
    }
  }
  return jumps;
}

/** The chain's rules in the exact form `iptables -S` prints them (CHECK compares text). */
function renderChain(family: Family, chain: string, comment: string, n: NormalizedForwards): string[] {
  const fam = n.families[family];
  if (!fam) return [];
  const c = commentArg(comment);
  const cond = n.conditions[family].length ? ` ${n.conditions[family].join(' ')}` : '';
  const mark = n.externalSetMarkChain
    ? `-j ${n.externalSetMarkChain}`
    : `-j MARK --set-xmark ${markHex(n.markBit)}/${markHex(n.markBit)}`;
  const lines: string[] = [];
  for (const f of fam.forwards) {
    const dst = f.hostIP ? ` -d ${f.hostIP}/${family === 4 ? 32 : 128}` : '';
    const match = `-p ${f.protocol} -m ${f.protocol} --dport ${f.hostPort}${cond}`;
    if (n.snat) {
      const src = n.masqAll ? '' : ` -s ${fam.target.subnet}`;
      lines.push(`-A ${chain}${src}${dst} ${match} ${c} ${mark}`);
      if (family === 4 && !n.masqAll) lines.push(`-A ${chain} -s ${loopbackNet}${dst} ${match} ${c} ${mark}`);
    }
    lines.push(`-A ${chain}${dst} ${match} ${c} -j DNAT --to-destination ${target(family, fam.target.address, f.containerPort)}`);
  }
  return lines;
}

/** Forwards recovered from a listed chain (the DNAT rules carry protocol and host port). */
function forwardsIn(existing: string[]): { protocol: string; hostPort: number }[] {
  const out: { protocol: string; hostPort: number }[] = [];
  for (const line of existing) {
    if (!/ -j DNAT /.test(line)) continue;
    const m = line.match(/ -p (\S+) .*--dport (\d+)/);
    if (m?.[1] && m[2]) out.push({ protocol: m[1], hostPort: Number(m[2]) });
  }
  return out;
}

function removal(chain: string, existing: string[], comment: string | undefined, keepChain: boolean): string[] {
  const lines = comment ? renderJumps(chain, comment, forwardsIn(existing)).map((j) => `-D ${j.line}`) : [];
  lines.push(`-F ${chain}`);
  if (!keepChain) lines.push(`-X ${chain}`);
  return lines;
}

export class XtablesForwards {
  constructor(private readonly families: Record<Family, XtablesFamily>) {}

  /**
   * Base chains and their single jumps from the built-in chains; the mark-masquerade rule for `markBit`; the
   * martian drop (IPv4). Reads the built-in chains only when the sentinel (CTNET-HOSTPORT-MASQ with our rule) is
   * missing, so the usual ADD pays one small read.
   */
  private async ensureBase(fam: XtablesFamily, n: NormalizedForwards, hostportMasq: string[] | undefined): Promise<void> {
    const wantMasq = n.snat && !n.externalSetMarkChain;
    const masqRule = `-A ${C.hostportMasq} -m mark --mark ${markHex(n.markBit)}/${markHex(n.markBit)} ${commentArg('ctnet hostport masquerade')} -j MASQUERADE`;
    if (hostportMasq && (!wantMasq || hostportMasq.includes(masqRule))) return;
    for (let attempt = 0; ; attempt++) {
      const v4 = fam.family === 4;
      const [pre, out, post, fwd, inp, hpm, admin, input, hostports] = await Promise.all([
        fam.listChain('nat', 'PREROUTING'),
        fam.listChain('nat', 'OUTPUT'),
        fam.listChain('nat', 'POSTROUTING'),
        fam.listChain('filter', 'FORWARD'),
        v4 ? fam.listChain('filter', 'INPUT') : Promise.resolve([]),
        fam.listChain('nat', C.hostportMasq),
        fam.listChain('filter', C.admin, true),
        v4 ? fam.listChain('filter', C.input) : Promise.resolve([]),
        fam.listChain('nat', C.hostports, true),
      ]);
      const jumpsTo = (lines: string[] | undefined, chain: string) => (lines ?? []).some((l) => l.endsWith(`-j ${chain}`));
      const nat: string[] = [];
      const filter: string[] = [];
      if (!hostports) nat.push(`-N ${C.hostports}`);
      const local = `-m addrtype --dst-type LOCAL ${commentArg('ctnet hostports')} -j ${C.hostports}`;
      if (!jumpsTo(pre, C.hostports)) nat.push(`-A PREROUTING ${local}`);
      // [::1] is left to the host's own stack: the kernel routes no packet from ::1 to another host (IPv6 has no
      // route_localnet), so DNATing it to a container would leave the client hanging instead of refused.
      const outJump = `-A OUTPUT ${v4 ? '' : `! -d ${ipv6Loopback} `}${local}`;
      if (v4 ? !jumpsTo(out, C.hostports) : !(out ?? []).includes(outJump)) {
        for (const old of (out ?? []).filter((l) => l.endsWith(`-j ${C.hostports}`))) nat.push(old.replace(/^-A /, '-D '));
        nat.push(outJump);
      }
      if (!hpm) nat.push(`-N ${C.hostportMasq}`);
      if (!jumpsTo(post, C.hostportMasq))
        nat.push(`-A POSTROUTING ${commentArg('ctnet hostport masquerade')} -j ${C.hostportMasq}`);
      if (wantMasq && !(hpm ?? []).includes(masqRule)) nat.push(masqRule);
      // The admin chain is evaluated first in FORWARD; we create it and never add to or flush it.
      if (!admin) filter.push(`-N ${C.admin}`);
      if (!jumpsTo(fwd, C.admin)) filter.push(`-I FORWARD 1 ${commentArg('ctnet admin chain evaluated first')} -j ${C.admin}`);
      if (v4) {
        if (!input) filter.push(`-N ${C.input}`);
        const drop = `-A ${C.input} ! -s ${loopbackNet} -d ${loopbackNet} ${commentArg('ctnet drop non-loopback to loopback net for route_localnet')} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`;
        if (!(input ?? []).includes(drop)) filter.push(drop);
        if (!jumpsTo(inp, C.input)) filter.push(`-I INPUT 1 ${commentArg('ctnet input')} -j ${C.input}`);
      }
      if (!nat.length && !filter.length) return;
      try {
        await fam.restore({ nat, filter });
        return;
      } catch (err) {
        // Most likely a concurrent ADD created part of the base between our read and our write: look again.
        if (attempt >= 2) throw err;
        log.debug({ err }, 'port-forward base changed concurrently; retrying');
      }
    }
  }

  /**
   * The common case in two concurrent processes per family and no reads: the base exists (its sentinel, the jump
   * into CTNET-HOSTPORT-MASQ and our masquerade rule there, as ensureBase trusts it, checked apart: see holds()) and
   * the attachment has no chain yet (the batch's `-N` is refused otherwise). When either fails, the full path repairs
   * the base and replaces whatever this batch made. A family without forwards is not read: its chain can only be left
   * by an earlier ADD of this very attachment without a DEL, and DEL and GC remove it.
   */
  private async setupFast(n: NormalizedForwards, chain: string, comment: string): Promise<boolean> {
    const wantMasq = n.snat && !n.externalSetMarkChain;
    const sentinel = [`POSTROUTING ${commentArg('ctnet hostport masquerade')} -j ${C.hostportMasq}`];
    if (wantMasq) {
      sentinel.push(
        `${C.hostportMasq} -m mark --mark ${markHex(n.markBit)}/${markHex(n.markBit)} ${commentArg('ctnet hostport masquerade')} -j MASQUERADE`,
      );
    }
    const results = await Promise.all(
      ([4, 6] as const).map(async (family) => {
        const forwards = n.families[family]?.forwards ?? [];
        if (!forwards.length) return true;
        const jumps = renderJumps(chain, comment, forwards).map((j) => `-A ${j.line}`);
        const lines = [`-N ${chain}`, ...renderChain(family, chain, comment, n), ...jumps];
        return this.families[family].addBesideSentinel('nat', lines, sentinel, `port forwards ${chain}`);
      }),
    );
    return results.every(Boolean);
  }

  async setup(spec: PortForwardSpec): Promise<void> {
    const n = normalizeForwards(spec);
    const chain = dnatChainName(spec);
    const comment = attachmentComment('dnat', spec);
    if (await this.setupFast(n, chain, comment)) return;
    try {
      await Promise.all(
        ([4, 6] as const).map(async (family) => {
          const fam = this.families[family];
          const forwards = n.families[family]?.forwards ?? [];
          const [existing, hostportMasq] = await Promise.all([
            fam.listChain('nat', chain),
            forwards.length ? fam.listChain('nat', C.hostportMasq) : Promise.resolve(undefined),
          ]);
          if (!forwards.length && !existing) return;
          if (forwards.length) await this.ensureBase(fam, n, hostportMasq);
          const oldComment = existing?.map((l) => commentOf(l)).find(Boolean);
          const lines = existing ? removal(chain, existing, oldComment, forwards.length > 0) : [];
          if (forwards.length) {
            if (!existing) lines.push(`-N ${chain}`);
            lines.push(...renderChain(family, chain, comment, n));
            lines.push(...renderJumps(chain, comment, forwards).map((j) => `-A ${j.line}`));
          }
          await fam.restore({ nat: lines });
        }),
      );
    } catch (err) {
      throw wrapError(`set up port forwards for ${attachmentLabel(spec)}`, err);
    }
  }

  async teardown(key: AttachmentKey, known?: KnownForwards): Promise<void> {
    validateKey(key);
    const chain = dnatChainName(key);
    const errors: unknown[] = [];
    const comment = attachmentComment('dnat', key);
    await Promise.all(
      ([4, 6] as const).map(async (family) => {
        try {
          const fam = this.families[family];
          if (known && !known.families.includes(family)) return;
          if (known?.forwards.length) {
            // The jumps as setup rendered them: remove without reading first; a mismatch refuses the batch.
            const jumps = renderJumps(chain, comment, known.forwards).map((j) => `-D ${j.line}`);
            try {
              await fam.restore({ nat: [...jumps, `-F ${chain}`, `-X ${chain}`] });
              return;
            } catch (err) {
              log.debug({ err, chain, family }, 'port-forward removal by known ports refused; listing the chain');
            }
          }
          await this.removeChain(fam, chain);
        } catch (err) {
          errors.push(err);
        }
      }),
    );
    if (errors.length) throw wrapError(`tear down port forwards for ${attachmentLabel(key)}`, errors[0]);
  }

  private async removeChain(fam: XtablesFamily, chain: string): Promise<void> {
    const existing = await fam.listChain('nat', chain);
    if (!existing) return;
    const comment = existing.map((l) => commentOf(l)).find(Boolean);
    try {
      await fam.restore({ nat: removal(chain, existing, comment, false) });
    } catch (err) {
      log.info({ err, chain }, 'rebuilt hostport jumps did not match; removing by listing CTNET-HOSTPORTS');
      const jumps = ((await fam.listChain('nat', C.hostports)) ?? []).filter((l) => l.endsWith(` -j ${chain}`));
      await fam.restore({ nat: [...jumps.map((l) => `-D ${l.slice(3)}`), `-F ${chain}`, `-X ${chain}`] });
    }
  }

  async check(spec: PortForwardSpec): Promise<void> {
    const n = normalizeForwards(spec);
    const chain = dnatChainName(spec);
    const comment = attachmentComment('dnat', spec);
    for (const family of [4, 6] as const) {
      const forwards: FamilyForward[] = n.families[family]?.forwards ?? [];
      if (!forwards.length) continue;
      const fam = this.families[family];
      const [existing, pre, out] = await Promise.all([
        fam.listChain('nat', chain),
        fam.listChain('nat', 'PREROUTING'),
        fam.listChain('nat', 'OUTPUT'),
      ]);
      const missing: string[] = [];
      const have = new Set(existing ?? []);
      const wanted = renderChain(family, chain, comment, n);
      if (n.conditions[family].length) {
        // Extra match tokens are printed in iptables' own order: compare rule counts and DNAT targets instead.
        if ((existing ?? []).length !== wanted.length)
          missing.push(`${wanted.length - (existing ?? []).length} rules of ${chain}`);
      } else {
        missing.push(...wanted.filter((r) => !have.has(r)));
      }
      for (const j of renderJumps(chain, comment, forwards)) {
        if (!(await fam.check('nat', j.line))) missing.push(`-A ${j.line}`);
      }
      for (const [name, lines] of [
        ['PREROUTING', pre],
        ['OUTPUT', out],
      ] as const) {
        if (!(lines ?? []).some((l) => l.endsWith(`-j ${C.hostports}`))) missing.push(`-A ${name} … -j ${C.hostports}`);
      }
      if (missing.length) {
        throw new CtnetError(
          ErrorCode.internal,
          `failed to check port forwards for ${attachmentLabel(spec)}: IPv${family} rules missing: ${missing.join('; ')}`,
        );
      }
    }
  }

  async gc(network: string, valid: AttachmentKey[]): Promise<void> {
    validateKey({ network, containerId: 'x', ifname: 'x' });
    const keep = new Set(valid.map((k) => dnatChainName({ ...k, network })));
    const errors: unknown[] = [];
    await Promise.all(
      ([4, 6] as const).map(async (family) => {
        try {
          const fam = this.families[family];
          const lines = await fam.save('nat');
          const stale = new Set<string>();
          for (const line of lines) {
            const m = line.match(/^-A (CTNET-DN-[0-9A-F]{19}) /);
            if (!m?.[1] || keep.has(m[1]) || stale.has(m[1])) continue;
            const owner = parseAttachmentComment(commentOf(line) ?? '');
            if (owner?.key.network === network && dnatChainName(owner.key) === m[1]) stale.add(m[1]);
          }
          if (!stale.size) return;
          const batch: string[] = [];
          for (const line of lines) {
            const t = line.match(/ -j (CTNET-DN-[0-9A-F]{19})$/)?.[1];
            if (t && stale.has(t) && line.startsWith(`-A ${C.hostports} `)) batch.push(`-D ${line.slice(3)}`);
          }
          for (const chain of stale) batch.push(`-F ${chain}`, `-X ${chain}`);
          log.info({ family, network, chains: [...stale] }, 'removing stale port-forward chains');
          await fam.restore({ nat: batch });
        } catch (err) {
          errors.push(err);
        }
      }),
    );
    if (errors.length) throw wrapError(`garbage-collect port forwards of network "${network}"`, errors[0]);
  }
}
