/**
 * Names and comments derived from an attachment key. These are the only strings built from caller
 * input that reach rule text, so they are validated here again (defense in depth against rule-text
 * injection: skel validates the ID and network name, but a library caller may not have).
 */
import { CtnetError, ErrorCode, sha256Hex } from '../core/index.js';
import type { AttachmentKey, NetworkIsolation, RuleOwner } from './types.js';

const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function validateKey(key: AttachmentKey): void {
  const bad = (what: string, value: unknown, why: string) =>
    new CtnetError(ErrorCode.invalidConfig, `invalid ${what} ${JSON.stringify(value)} for a firewall rule: ${why}`);
  if (typeof key.network !== 'string' || !namePattern.test(key.network)) {
    throw bad('network name', key.network, `must match ${namePattern.source}`);
  }
  if (typeof key.containerId !== 'string' || !namePattern.test(key.containerId)) {
    throw bad('container ID', key.containerId, `must match ${namePattern.source}`);
  }
  const ifBytes = typeof key.ifname === 'string' ? Buffer.byteLength(key.ifname) : 0;
  if (ifBytes < 1 || ifBytes > 15 || /[/:\s]/.test(key.ifname)) {
    throw bad('interface name', key.ifname, 'must be 1-15 bytes without "/", ":" or whitespace');
  }
}

/** sha256 of network, container ID and ifname (NUL-separated so 'a'+'bc' ≠ 'ab'+'c'), hex. */
export function attachmentHash(key: AttachmentKey): string {
  return sha256Hex(`${key.network}\0${key.containerId}\0${key.ifname}`);
}

/** Interface names may hold any byte but "/", ":" and whitespace: percent-encode everything unusual. */
function encodeIfname(ifname: string): string {
  return ifname.replace(/[^A-Za-z0-9_.@+=-]/g, (c) =>
    [...Buffer.from(c)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''),
  );
}

function decodeIfname(text: string): string {
  return Buffer.from(
    text.replace(/%([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
    'latin1',
  ).toString('utf8');
}

/** nft rule comments hold at most 128 bytes; iptables 255. The shorter limit keeps both backends alike. */
export const commentLimit = 127;

/**
 * The comment on every rule of an attachment: `ctnet <kind> net=<network> id=<containerId> if=<ifname>`.
 * Only characters in [A-Za-z0-9_.@+=%-] and spaces, so it needs no escaping in either rule syntax.
 * Too long for the limit (very long names): cut; GC then cannot verify the owner and leaves it alone.
 */
export function attachmentComment(kind: string, key: AttachmentKey): string {
  const text = `ctnet ${kind} net=${key.network} id=${key.containerId} if=${encodeIfname(key.ifname)}`;
  return text.length > commentLimit ? text.slice(0, commentLimit) : text;
}

/** Parses a comment made by attachmentComment; undefined for anything else (never our rule, or cut). */
export function parseAttachmentComment(comment: string): { kind: string; key: AttachmentKey } | undefined {
  const m = comment.match(/^ctnet (\S+) net=(\S+) id=(\S+) if=(\S+)$/);
  if (!m) return undefined;
  const key = { network: m[2] ?? '', containerId: m[3] ?? '', ifname: decodeIfname(m[4] ?? '') };
  return { kind: m[1] ?? '', key };
}

export function attachmentLabel(key: AttachmentKey): string {
  return `network "${key.network}" container "${key.containerId}" interface "${key.ifname}"`;
}

/** The comment on a network's isolation rules and elements. */
export function isolationComment(network: string): string {
  return `ctnet isolation net=${network}`;
}

/** The network an isolation comment names; '' for any other comment (an isolation rule of an earlier layout has none). */
export function isolationNetworkOf(comment: string): string {
  return /^ctnet isolation net=(\S+)$/.exec(comment)?.[1] ?? '';
}

const bridgePattern = /^[A-Za-z0-9_.@+=-]{1,15}$/;

export function validateIsolation(net: NetworkIsolation): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(net.network)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid network name ${JSON.stringify(net.network)} for an isolation rule`);
  }
  // Rule text gets the name as is: only characters that need no quoting (Linux allows more; our bridges never use it).
  if (!bridgePattern.test(net.bridge)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid bridge name ${JSON.stringify(net.bridge)} for an isolation rule`);
  }
}

/** What a rule's comment says it belongs to; undefined for a comment that is not ours. */
export function ruleOwner(comment: string): RuleOwner | undefined {
  const isolation = /^ctnet isolation net=(\S+)$/.exec(comment)?.[1];
  return isolation ? { kind: 'isolation', network: isolation } : parseAttachmentComment(comment);
}
