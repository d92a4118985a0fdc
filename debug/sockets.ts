/** Listening sockets of a network namespace, from /proc/net/{tcp,tcp6,udp,udp6} read inside it. */
import { procNet } from './kernel.js';

export interface SocketEntry {
  protocol: 'tcp' | 'udp';
  family: 4 | 6;
  address: string;
  port: number;
  /** tcp: LISTEN; udp: bound (state 07, "unconnected"). */
  listening: boolean;
}

function decodeAddress(hex: string, family: 4 | 6): string {
  // The kernel prints each 32-bit word in host (little-endian) byte order.
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)));
  if (family === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  const text = groups.join(':');
  return text === '0:0:0:0:0:0:0:0' ? '::' : text.replace(/^0:0:0:0:0:ffff:/, '::ffff:');
}

export function parseProcNet(text: string, protocol: 'tcp' | 'udp', family: 4 | 6): SocketEntry[] {
  const out: SocketEntry[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    const state = f[3];
    if (!local || !state) continue;
    const [addr = '', port = '0'] = local.split(':');
    out.push({
      protocol,
      family,
      address: decodeAddress(addr, family),
      port: Number.parseInt(port, 16),
      listening: protocol === 'tcp' ? state === '0A' : state === '07',
    });
  }
  return out;
}

export async function listeningSockets(netns: string): Promise<SocketEntry[]> {
  const files = [
    ['tcp', 4, 'tcp'],
    ['tcp', 6, 'tcp6'],
    ['udp', 4, 'udp'],
    ['udp', 6, 'udp6'],
  ] as const;
  return files
    .flatMap(([protocol, family, file]) => {
      const text = procNet(file, netns);
      return text === undefined ? [] : parseProcNet(text, protocol, family);
    })
    .filter((s) => s.listening);
}
