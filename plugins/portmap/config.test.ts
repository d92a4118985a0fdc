import test from 'ava';
import { parseMappings, portmapSettings } from './config.js';

const base = { cniVersion: '1.1.0', name: 'net1', type: 'portmap' };

test('mappings: defaults, canonical host addresses, bracketed IPv6', (t) => {
  t.deepEqual(parseMappings([{ hostPort: 8080, containerPort: 80 }]), [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  t.deepEqual(parseMappings([{ hostPort: 1, containerPort: 2, protocol: 'UDP', hostIP: '[2001:db8::0001]' }]), [
    { hostPort: 1, containerPort: 2, protocol: 'udp', hostIP: '2001:db8::1' },
  ]);
  t.deepEqual(parseMappings([{ hostPort: 1, containerPort: 2, hostIP: '0.0.0.0' }])[0]?.hostIP, '0.0.0.0');
  t.deepEqual(parseMappings(undefined), []);
});

test('mappings: each bad value is code 7 naming the key', (t) => {
  const cases: [unknown, RegExp][] = [
    [{ hostPort: 0, containerPort: 80 }, /portMappings\[0\]\.hostPort/],
    [{ hostPort: 65536, containerPort: 80 }, /hostPort/],
    [{ hostPort: 80, containerPort: 1.5 }, /containerPort/],
    [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }, /protocol "icmp"/],
    [{ hostPort: 80, containerPort: 80, hostIP: 'example.com' }, /hostIP/],
    [{ hostPort: 80, containerPort: 80, hostIP: '::1' }, /IPv6 loopback address cannot be forwarded/],
  ];
  for (const [m, msg] of cases) {
    const err = t.throws(() => parseMappings([m]));
    t.is((err as { code?: number }).code, 7);
    t.regex(err?.message ?? '', msg);
  }
});

test('backend follows the options: iptables-only options pick iptables, and contradictions are refused', (t) => {
  t.is(portmapSettings({ ...base }).backend, 'auto');
  t.is(portmapSettings({ ...base, markMasqBit: 5 }).backend, 'iptables');
  t.is(portmapSettings({ ...base, conditionsV4: ['-s', '1.2.3.4'] }).backend, 'iptables');
  t.is(portmapSettings({ ...base, conditionsV4: ['ip saddr 1.2.3.4'] }).backend, 'nftables');
  t.throws(() => portmapSettings({ ...base, backend: 'nftables', markMasqBit: 5 }), { message: /iptables backend only/ });
  t.throws(() => portmapSettings({ ...base, backend: 'iptables', conditionsV6: ['ip6 saddr ::1'] }), {
    message: /nftables backend only/,
  });
  t.throws(() => portmapSettings({ ...base, markMasqBit: 5, externalSetMarkChain: 'X' }), { message: /cannot both be set/ });
  t.throws(() => portmapSettings({ ...base, conditionsV4: ['-s 1.2.3.4\n-A INPUT -j ACCEPT'] }), { message: /newlines/ });
});
