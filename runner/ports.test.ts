import test from 'ava';
import { formatHostPort, portsConflict } from '../core/index.js';
import { allocatePorts, formatMapping, type PortMapping, parseExpose, parsePublish, publishedBindings } from './ports.js';
import { portBindingsView, portsView } from './view.js';

const req = (hostIP: string, hostPorts: [number, number], containerPort: number, protocol = 'tcp') => ({
  hostIP,
  hostPorts,
  containerPort,
  protocol,
});

test('container port only: any host port, every address, tcp', (t) => {
  t.deepEqual(parsePublish('80'), [req('', [0, 0], 80)]);
});

test('host:container and protocol', (t) => {
  t.deepEqual(parsePublish('8080:80'), [req('', [8080, 8080], 80)]);
  t.deepEqual(parsePublish('8080:80/udp'), [req('', [8080, 8080], 80, 'udp')]);
  t.deepEqual(parsePublish('8080:80/SCTP'), [req('', [8080, 8080], 80, 'sctp')]);
});

test('host IP, with and without a host port', (t) => {
  t.deepEqual(parsePublish('127.0.0.1:8080:80'), [req('127.0.0.1', [8080, 8080], 80)]);
  t.deepEqual(parsePublish('127.0.0.1::80'), [req('127.0.0.1', [0, 0], 80)]);
});

test('bracketed IPv6 host addresses', (t) => {
  t.deepEqual(parsePublish('[::1]:8080:80'), [req('::1', [8080, 8080], 80)]);
  t.deepEqual(parsePublish('[::]::80/udp'), [req('::', [0, 0], 80, 'udp')]);
  t.deepEqual(parsePublish('[2001:db8::1]:53:53/udp'), [req('2001:db8::1', [53, 53], 53, 'udp')]);
});

test('equal ranges map one to one; a host range for one port is a pool', (t) => {
  t.deepEqual(parsePublish('8000-8002:80-82'), [req('', [8000, 8000], 80), req('', [8001, 8001], 81), req('', [8002, 8002], 82)]);
  t.deepEqual(parsePublish('8000-8010:80'), [req('', [8000, 8010], 80)]);
  t.deepEqual(parsePublish('80-81'), [req('', [0, 0], 80), req('', [0, 0], 81)]);
});

test('long form', (t) => {
  t.deepEqual(parsePublish('published=8080,target=80,protocol=udp'), [req('', [8080, 8080], 80, 'udp')]);
  t.deepEqual(parsePublish('target=80,host_ip=127.0.0.1'), [req('127.0.0.1', [0, 0], 80)]);
});

test('bad specs are errors with code 7 naming the spec', (t) => {
  for (const bad of [
    '',
    'abc',
    '0',
    '70000',
    '8080:80/icmp',
    '1.2.3:80:80',
    '::1:8080:80',
    '[::1:8080:80',
    '8000-8002:80-81',
    '90-80',
    '8080:',
    'published=1',
  ]) {
    const err = t.throws(() => parsePublish(bad), undefined, bad) as { code?: number; message: string } | undefined;
    t.is(err?.code, 7, bad);
    t.true(err?.message.includes(`"${bad}"`), bad);
  }
});

test('--expose takes container ports only', (t) => {
  t.deepEqual(parseExpose('80'), [req('', [0, 0], 80)]);
  t.deepEqual(parseExpose('53/udp'), [req('', [0, 0], 53, 'udp')]);
  t.throws(() => parseExpose('8080:80'));
});

test('overlap: wildcards cover their family, "" covers both, protocols are separate', (t) => {
  const m = (hostIP: string, hostPort = 80, protocol: 'tcp' | 'udp' = 'tcp'): PortMapping => ({
    hostIP,
    hostPort,
    containerPort: 1,
    protocol,
  });
  t.true(portsConflict(m(''), m('127.0.0.1')));
  t.true(portsConflict(m('0.0.0.0'), m('10.0.0.1')));
  t.false(portsConflict(m('0.0.0.0'), m('::1')));
  t.true(portsConflict(m('::'), m('::1')));
  t.false(portsConflict(m('127.0.0.1'), m('127.0.0.2')));
  t.false(portsConflict(m(''), m('', 80, 'udp')));
  t.false(portsConflict(m(''), m('', 81)));
});

test('allocation: fixed ports checked, pools scanned in order, random ports from the ephemeral range', (t) => {
  const taken = new Set([8000, 8001]);
  const ctx = {
    ephemeral: [40000, 40009] as [number, number],
    holder: (m: PortMapping) => (taken.has(m.hostPort) ? 'container other' : undefined),
    random: () => 0.5,
  };
  t.deepEqual(
    allocatePorts(parsePublish('8000-8010:80'), ctx).map((m) => m.hostPort),
    [8002],
  );
  t.deepEqual(
    allocatePorts(parsePublish('80'), ctx).map((m) => m.hostPort),
    [40005],
  );
  const err = t.throws(() => allocatePorts(parsePublish('8001:80'), ctx)) as { code?: number; message: string };
  t.is(err.code, 101);
  t.regex(err.message, /0\.0\.0\.0:8001\/tcp: port is already allocated by container other/);
  // Two requests of one container for the same port collide with each other too.
  t.throws(() => allocatePorts([...parsePublish('9000:80'), ...parsePublish('9000:81')], ctx), { message: /this container/ });
  t.throws(() => allocatePorts(parsePublish('8000-8001:80'), ctx), { message: /no free host port in 8000-8001/ });
});

test('Docker notation for ps', (t) => {
  t.is(formatMapping({ hostIP: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' }), '0.0.0.0:8080->80/tcp');
  t.is(formatMapping({ hostIP: '::1', hostPort: 53, containerPort: 53, protocol: 'udp' }), '[::1]:53->53/udp');
});

test('Docker notation for port: IPv6 in brackets, a wildcard mapping on both families of a dual-stack container', (t) => {
  t.is(formatHostPort('2001:db8:ffff::1', 8081), '[2001:db8:ffff::1]:8081');
  t.is(formatHostPort('::', 8080), '[::]:8080');
  t.is(formatHostPort('0.0.0.0', 8080), '0.0.0.0:8080');
  const ports: PortMapping[] = [
    { hostIP: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
    { hostIP: '2001:db8:ffff::1', hostPort: 8081, containerPort: 80, protocol: 'tcp' },
  ];
  t.deepEqual(
    publishedBindings(ports, true).map((p) => `${p.containerPort}/${p.protocol} -> ${formatHostPort(p.hostIP, p.hostPort)}`),
    ['80/tcp -> 0.0.0.0:8080', '80/tcp -> [::]:8080', '80/tcp -> [2001:db8:ffff::1]:8081'],
  );
  // An IPv4-only container is not reachable over IPv6: its wildcard mapping is listed once.
  t.deepEqual(
    publishedBindings(ports.slice(0, 1), false).map((p) => p.hostIP),
    ['0.0.0.0'],
  );
  t.deepEqual(portsView(publishedBindings(ports.slice(0, 1), true)), {
    '80/tcp': [
      { HostIp: '0.0.0.0', HostPort: '8080' },
      { HostIp: '::', HostPort: '8080' },
    ],
  });
});

test("inspect's PortBindings are Docker's: what was asked for, keyed by container port", (t) => {
  t.deepEqual(
    portBindingsView([...parsePublish('8080:80'), ...parsePublish('[2001:db8::1]:8000-8010:53/udp'), ...parsePublish('90')]),
    {
      '80/tcp': [{ HostIp: '', HostPort: '8080' }],
      '53/udp': [{ HostIp: '2001:db8::1', HostPort: '8000-8010' }],
      '90/tcp': [{ HostIp: '', HostPort: '' }],
    },
  );
});
