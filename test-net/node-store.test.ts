/**
 * The etcd subnet store against a real etcd (Debian's), in a sandbox namespace of its own. The scenarios run in
 * that namespace (test-net/node-store-scenarios.ts) and print what they saw.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { run } from '../core/index.js';
import { type EtcdServer, startEtcd } from './etcd-helpers.js';
import { createNetns, nsRun, repoRoot, tempDir } from './sandbox.js';

const etcdIp = '203.0.113.10';

async function etcdSandbox(t: ExecutionContext, tls?: string): Promise<{ ns: string; etcd: EtcdServer }> {
  const ns = await createNetns(t, 'etcd');
  // Clients run in this namespace too: the address can sit on lo.
  await nsRun(ns, 'ip', ['addr', 'add', `${etcdIp}/32`, 'dev', 'lo']);
  const etcd = await startEtcd(
    t,
    ns,
    etcdIp,
    tls ? { server: { ca: join(tls, 'ca.pem'), cert: join(tls, 'server.pem'), key: join(tls, 'server-key.pem') } } : undefined,
  );
  return { ns, etcd };
}

async function scenario<T>(ns: string, name: string, url: string, tlsDir?: string): Promise<T> {
  const script = join(repoRoot, 'test-net', 'node-store-scenarios.ts');
  const r = await nsRun(ns, process.execPath, ['--import', 'tsx', script, name, url, ...(tlsDir ? [tlsDir] : [])]);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as T;
}

test('six nodes joining at the same instant get distinct subnets; the ones beyond the CIDR get a clear error', async (t) => {
  const { ns, etcd } = await etcdSandbox(t);
  const r = await scenario<{ subnets: string[]; errors: string[]; stored: string[] }>(ns, 'race', etcd.storeUrl);
  t.is(r.subnets.length, 4, JSON.stringify(r));
  t.is(new Set(r.subnets).size, 4, 'no subnet twice');
  t.deepEqual([...r.subnets].sort(), ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
  t.is(r.errors.length, 2);
  for (const e of r.errors) t.regex(e, /every \/24 of 10\.244\.0\.0\/22 is taken/);
  t.is(r.stored.length, 4, 'the store holds one record per winner');
});

test('the first node writes the cluster config; later ones read it', async (t) => {
  const { ns, etcd } = await etcdSandbox(t);
  const r = await scenario<{ first: { clusterCidr: string }; second: { clusterCidr: string } }>(ns, 'config', etcd.storeUrl);
  t.is(r.first.clusterCidr, '10.244.0.0/22');
  t.is(r.second.clusterCidr, '10.244.0.0/22');
});

test('a restarted node gets its own subnet back while its record lives, on a fresh lease', async (t) => {
  const { ns, etcd } = await etcdSandbox(t);
  const r = await scenario<{
    first: { subnet: string; since: string };
    again: { subnet: string; since: string };
    other: string;
    sameLease: boolean;
    records: number;
    ttlLeft: number;
  }>(ns, 'restart', etcd.storeUrl);
  t.is(r.again.subnet, r.first.subnet);
  t.is(r.again.since, r.first.since, 'the join time is kept');
  t.not(r.other, r.first.subnet);
  t.false(r.sameLease);
  t.is(r.records, 1);
  t.true(r.ttlLeft > 20 && r.ttlLeft <= 30, `ttl left ${r.ttlLeft}`);
});

test('TTL: an unrenewed lease expires and watchers see it; renewed stays; released goes at once; a free preferred subnet is granted', async (t) => {
  const { ns, etcd } = await etcdSandbox(t);
  const r = await scenario<{
    left: string[];
    renewals: boolean[];
    renewLapsed: boolean;
    events: string[];
    lapsedSubnet: string;
    releasedSubnet: string;
  }>(ns, 'ttl', etcd.storeUrl);
  t.deepEqual(r.left, ['n2']);
  t.true(r.renewals.every(Boolean));
  t.false(r.renewLapsed, 'renewing an expired lease says so');
  t.deepEqual(
    r.events.filter((e) => e.startsWith('put')),
    ['put n1', 'put n2', 'put n3'],
  );
  t.true(r.events.includes(`delete ${r.releasedSubnet}`));
  t.true(r.events.includes(`delete ${r.lapsedSubnet}`));
  const p = await scenario<{ subnet: string }>(ns, 'preferred', etcd.storeUrl);
  t.is(p.subnet, '10.244.3.0/24');
});

test('TLS with client certificates: a client with a certificate signed by the CA is served, one without is refused', async (t) => {
  const dir = tempDir(t, 'tls');
  const ssl = (args: string[]) => run('openssl', args, { cwd: dir, timeoutMs: 30_000 });
  await ssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=ctt-ca',
  ]);
  for (const [name, ext] of [
    ['server', `subjectAltName=IP:${etcdIp}\nextendedKeyUsage=serverAuth`],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    await ssl([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}-key.pem`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=ctt-${name}`,
    ]);
    await ssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    ]);
  }
  const { ns, etcd } = await etcdSandbox(t, dir);
  t.true(etcd.storeUrl.startsWith('etcds://'));
  const ok = await scenario<{ subnet?: string; error?: string }>(ns, 'preferred', etcd.storeUrl, dir);
  t.is(ok.subnet, '10.244.3.0/24', JSON.stringify(ok));
  const refused = await scenario<{ count?: number; error?: string }>(ns, 'listOnly', etcd.storeUrl.replace('etcds', 'http'));
  t.truthy(refused.error, 'plain HTTP to a TLS etcd fails');
});
