/**
 * Docker's `-p/--publish` syntax, `-P` with `--expose`, and host-port allocation. Pure: the
 * "is this port free" question is asked through a callback, so every rule is unit-tested.
 *
 * Grammar (docker/cli go-connections nat.go): `[hostIP:][hostPort:]containerPort[/proto]`, where
 * everything before the last two `:` fields is the IP, IPv6 in brackets; ports may be ranges
 * (`8000-8010:80-90`, equal length), and a host range for a single container port is a pool.
 * The long form `published=8080,target=80,protocol=udp,host_ip=…` is accepted too.
 */
import { isIP } from 'node:net';
import {
  type PortMapping as CniPortMapping,
  CtnetError,
  ErrorCode,
  formatHostPort,
  type PortProtocol,
  portProtocols,
  portsConflict,
} from '../core/index.js';

/** What the user asked for, one entry per container port. */
export interface PortRequest {
  /** Empty: every host address, IPv4 and IPv6. */
  hostIP: string;
  /** Host port range to take from; [0, 0] means "any free port". */
  hostPorts: [number, number];
  containerPort: number;
  protocol: PortProtocol;
}

/** A concrete mapping: core's PortMapping with hostIP always set ('' = every address; omitted in the CNI args). */
export type PortMapping = Required<CniPortMapping>;

function bad(spec: string, why: string): CtnetError {
  return new CtnetError(ErrorCode.invalidConfig, `invalid publish spec "${spec}": ${why}`, {
    hint: 'expected [hostIP:][hostPort:]containerPort[/tcp|udp|sctp], e.g. 8080:80, 127.0.0.1::80/udp, [::1]:8000-8001:80-81',
  });
}

function parsePort(spec: string, text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text)) throw bad(spec, `${what} "${text}" is not a number`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw bad(spec, `${what} ${n} is outside 1-65535`);
  return n;
}

function parseRange(spec: string, text: string, what: string): [number, number] {
  const dash = text.indexOf('-');
  if (dash < 0) {
    const p = parsePort(spec, text, what);
    return [p, p];
  }
  const lo = parsePort(spec, text.slice(0, dash), what);
  const hi = parsePort(spec, text.slice(dash + 1), what);
  if (hi < lo) throw bad(spec, `${what} range ${text} ends before it starts`);
  return [lo, hi];
}

function parseProtocol(spec: string, text: string | undefined): PortProtocol {
  const proto = (text ?? 'tcp').toLowerCase();
  if (!(portProtocols as readonly string[]).includes(proto)) throw bad(spec, `protocol "${text}" is not tcp, udp or sctp`);
  return proto as PortProtocol;
}

function parseHostIP(spec: string, text: string): string {
  const ip = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (ip === '') return '';
  if (!isIP(ip)) throw bad(spec, `host address "${text}" is not an IP address`);
  if (text.startsWith('[') !== ip.includes(':')) throw bad(spec, 'IPv6 host addresses go in brackets, e.g. [::1]:8080:80');
  return ip;
}

/** Splits `[v6]:a:b` / `v4:a:b` / `a:b` / `b` into [ip, host, container]. */
function splitFields(spec: string, body: string): [string, string, string] {
  if (body.startsWith('[')) {
    const close = body.indexOf(']');
    if (close < 0 || body[close + 1] !== ':') throw bad(spec, 'unterminated [IPv6] host address');
    const rest = body.slice(close + 2).split(':');
    if (rest.length !== 2) throw bad(spec, 'expected [IPv6]:hostPort:containerPort');
    return [body.slice(0, close + 1), rest[0] ?? '', rest[1] ?? ''];
  }
  const parts = body.split(':');
  if (parts.length === 1) return ['', '', parts[0] ?? ''];
  if (parts.length === 2) return ['', parts[0] ?? '', parts[1] ?? ''];
  return [parts.slice(0, -2).join(':'), parts[parts.length - 2] ?? '', parts[parts.length - 1] ?? ''];
}

function parseLongForm(spec: string): PortRequest[] {
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw bad(spec, `"${part}" is not key=value`);
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  for (const key of fields.keys()) {
    if (!['published', 'target', 'protocol', 'host_ip', 'mode'].includes(key)) throw bad(spec, `unknown key "${key}"`);
  }
  const target = fields.get('target');
  if (!target) throw bad(spec, 'target= is required');
  const published = fields.get('published');
  return expand(
    spec,
    parseHostIP(spec, fields.get('host_ip') ?? ''),
    published,
    target,
    parseProtocol(spec, fields.get('protocol')),
  );
}

function expand(
  spec: string,
  hostIP: string,
  hostText: string | undefined,
  ctrText: string,
  protocol: PortProtocol,
): PortRequest[] {
  if (ctrText === '') throw bad(spec, 'the container port is missing');
  const ctr = parseRange(spec, ctrText, 'container port');
  const host: [number, number] = hostText ? parseRange(spec, hostText, 'host port') : [0, 0];
  const ctrCount = ctr[1] - ctr[0] + 1;
  const hostCount = host[1] - host[0] + 1;
  const out: PortRequest[] = [];
  for (let i = 0; i < ctrCount; i++) {
    let hostPorts: [number, number];
    if (host[0] === 0) hostPorts = [0, 0];
    else if (ctrCount === 1)
      hostPorts = host; // one container port, a host range: a pool
    else if (hostCount === ctrCount) hostPorts = [host[0] + i, host[0] + i];
    else throw bad(spec, `host range ${hostText} and container range ${ctrText} differ in length`);
    out.push({ hostIP, hostPorts, containerPort: ctr[0] + i, protocol });
  }
  return out;
}

/** Parses one `-p` value into one request per container port. */
export function parsePublish(spec: string): PortRequest[] {
  const text = spec.trim();
  if (text === '') throw bad(spec, 'empty');
  if (text.includes('=')) return parseLongForm(text);
  const slash = text.lastIndexOf('/');
  const body = slash >= 0 ? text.slice(0, slash) : text;
  const protocol = parseProtocol(spec, slash >= 0 ? text.slice(slash + 1) : undefined);
  const [ipText, hostText, ctrText] = splitFields(spec, body);
  return expand(spec, parseHostIP(spec, ipText), hostText, ctrText, protocol);
}

/** `--expose 80`, `--expose 8000-8010/udp`: the ports `-P` publishes on random host ports. */
export function parseExpose(spec: string): PortRequest[] {
  const slash = spec.lastIndexOf('/');
  const body = slash >= 0 ? spec.slice(0, slash) : spec;
  if (body.includes(':')) throw bad(spec, '--expose takes container ports only');
  return expand(spec, '', undefined, body, parseProtocol(spec, slash >= 0 ? spec.slice(slash + 1) : undefined));
}

export function isWildcard(ip: string): boolean {
  return ip === '' || ip === '0.0.0.0' || ip === '::';
}

export interface AllocationContext {
  /** Ephemeral range for "any free port" (/proc/sys/net/ipv4/ip_local_port_range). */
  ephemeral: [number, number];
  /** Who holds a port already (another container's name, "a process on the host"), or undefined. */
  holder(m: PortMapping): string | undefined;
  /** Random source, injectable for tests. */
  random?: () => number;
}

/** Turns requests into concrete mappings: fixed ports checked, pools scanned, random ports drawn. */
export function allocatePorts(requests: readonly PortRequest[], ctx: AllocationContext): PortMapping[] {
  const out: PortMapping[] = [];
  const holder = (m: PortMapping) => (out.some((o) => portsConflict(o, m)) ? 'this container' : ctx.holder(m));
  for (const r of requests) {
    const base = { hostIP: r.hostIP, containerPort: r.containerPort, protocol: r.protocol };
    const [lo, hi] = r.hostPorts;
    if (lo !== 0 && lo === hi) {
      const m = { ...base, hostPort: lo };
      const who = holder(m);
      if (who) throw portTaken(m, who);
      out.push(m);
      continue;
    }
    const [from, to] = lo === 0 ? ctx.ephemeral : [lo, hi];
    const span = to - from + 1;
    // Pools are scanned in order (Docker takes the first free); ephemeral ports start at random.
    const start = lo === 0 ? Math.floor((ctx.random ?? Math.random)() * span) : 0;
    let found: PortMapping | undefined;
    for (let i = 0; i < span && !found; i++) {
      const m = { ...base, hostPort: from + ((start + i) % span) };
      if (!holder(m)) found = m;
    }
    if (!found) {
      throw new CtnetError(
        ErrorCode.portConflict,
        `failed to publish container port ${r.containerPort}/${r.protocol}: no free host port in ${from}-${to}`,
      );
    }
    out.push(found);
  }
  return out;
}

export function formatBinding(m: Pick<PortMapping, 'hostIP' | 'hostPort' | 'protocol'>): string {
  return `${formatHostPort(m.hostIP || '0.0.0.0', m.hostPort)}/${m.protocol}`;
}

/** Docker's `ps` notation: `0.0.0.0:8080->80/tcp`. */
export function formatMapping(m: PortMapping): string {
  return `${formatHostPort(m.hostIP || '0.0.0.0', m.hostPort)}->${m.containerPort}/${m.protocol}`;
}

/**
 * The host addresses a container's ports answer on, as Docker lists them: a mapping without an address is
 * `0.0.0.0` and, when the container has an IPv6 address to forward to, `::` as well.
 */
export function publishedBindings(ports: readonly PortMapping[], ipv6: boolean): PortMapping[] {
  return ports.flatMap((p) =>
    p.hostIP !== ''
      ? [p]
      : ipv6
        ? [
            { ...p, hostIP: '0.0.0.0' },
            { ...p, hostIP: '::' },
          ]
        : [{ ...p, hostIP: '0.0.0.0' }],
  );
}

export function portTaken(m: PortMapping, holder: string): CtnetError {
  return new CtnetError(ErrorCode.portConflict, `failed to publish ${formatBinding(m)}: port is already allocated by ${holder}`, {
    hint: 'choose another host port, or stop the container that holds it',
  });
}
