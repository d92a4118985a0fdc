/**
 * The files Docker generates per container and bind-mounts over the image's: /etc/hostname,
 * /etc/hosts, /etc/resolv.conf. Pure text builders; the runner writes them into the container's
 * state directory.
 */
import type { CniDns } from '../core/index.js';

export function hostsFile(hostname: string, ip: string | undefined): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ];
  lines.push(`${ip ?? '127.0.1.1'}\t${hostname}`);
  return `${lines.join('\n')}\n`;
}

/** Docker's fallback when the host only knows a loopback resolver the container cannot reach. */
export const fallbackNameservers = ['8.8.8.8', '8.8.4.4'];

/**
 * The container's resolv.conf: the CNI result's DNS when a plugin gave one, else the host's with
 * loopback nameservers removed (they live in the host's namespace), else Google's as Docker does.
 * With host networking the host's file is used as it is.
 */
export function resolvConf(hostText: string, opts: { hostNetwork: boolean; dns?: CniDns }): string {
  if (opts.hostNetwork) return hostText;
  const lines: string[] = [];
  const nameservers = opts.dns?.nameservers?.length ? opts.dns.nameservers : undefined;
  if (nameservers) {
    if (opts.dns?.search?.length) lines.push(`search ${opts.dns.search.join(' ')}`);
    for (const ns of nameservers) lines.push(`nameserver ${ns}`);
    if (opts.dns?.options?.length) lines.push(`options ${opts.dns.options.join(' ')}`);
    return `${lines.join('\n')}\n`;
  }
  let kept = 0;
  for (const line of hostText.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) {
      const ns = m[1] ?? '';
      if (ns.startsWith('127.') || ns === '::1') continue;
      kept++;
    }
    if (line.trim()) lines.push(line);
  }
  if (kept === 0) for (const ns of fallbackNameservers) lines.push(`nameserver ${ns}`);
  return `${lines.join('\n')}\n`;
}
