/** resolv.conf → CNI `dns` (reference: plugins/ipam/host-local/dns.go). */
import { type CniDns, ErrorCode, readRegularFile, wrapError } from '../core/index.js';

export function parseResolvConfText(text: string): CniDns {
  const dns: CniDns = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const fields = line.split(/\s+/);
    if (fields.length < 2) continue;
    const [keyword, first, ...rest] = fields as [string, string, ...string[]];
    switch (keyword) {
      case 'nameserver':
        dns.nameservers = [...(dns.nameservers ?? []), first];
        break;
      case 'domain':
        dns.domain = first;
        break;
      case 'search':
        dns.search = [...(dns.search ?? []), first, ...rest];
        break;
      case 'options':
        dns.options = [...(dns.options ?? []), first, ...rest];
        break;
    }
  }
  return dns;
}

export function readResolvConf(path: string): CniDns {
  let text: string;
  try {
    text = readRegularFile(path);
  } catch (cause) {
    throw wrapError(`read ipam.resolvConf ${path}`, cause, ErrorCode.io);
  }
  return parseResolvConfText(text);
}
