/**
 * Store scenarios run inside the etcd sandbox namespace (the test process lives in the machine's namespace and
 * cannot reach the sandbox's addresses): `node --import tsx node-store-scenarios.ts SCENARIO STORE_URL [TLS_DIR]`.
 * Prints one JSON object.
 */
import { EtcdStore } from '../node/index.js';

const [scenario, url, tlsDir] = process.argv.slice(2) as [string, string, string | undefined];
const cfg = { clusterCidr: '10.244.0.0/22', subnetSize: 24, vni: 1, port: 8472 };
const tls = tlsDir ? { ca: `${tlsDir}/ca.pem`, cert: `${tlsDir}/client.pem`, key: `${tlsDir}/client-key.pem` } : undefined;
const open = (prefix = '/t') => new EtcdStore({ url, prefix, tls, timeoutMs: 3000 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const join = (s: EtcdStore, node: string, ttl = 30, preferred?: string) =>
  s.acquire(cfg, {
    node,
    nodeIp: `192.0.2.${node.replace(/\D/g, '') || 1}`,
    backend: 'auto',
    vtepMac: '02:00:00:00:00:01',
    ttl,
    preferred,
  });

const scenarios: Record<string, () => Promise<unknown>> = {
  // Six nodes at the same instant, each with its own connection, for four subnets.
  async race() {
    const stores = Array.from({ length: 6 }, () => open());
    await Promise.all(stores.map((s) => s.ensureConfig(cfg)));
    const results = await Promise.allSettled(stores.map((s, i) => join(s, `n${i + 1}`)));
    const snap = await stores[0]?.list();
    await Promise.all(stores.map((s) => s.close()));
    return {
      subnets: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.record.subnet] : [])),
      errors: results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : [])),
      stored: snap?.records.map((r) => `${r.node}=${r.subnet}`).sort(),
    };
  },
  // The first config wins; a node proposing another one reads the first.
  async config() {
    const a = open();
    const b = open();
    const first = await a.ensureConfig(cfg);
    const second = await b.ensureConfig({ ...cfg, clusterCidr: '10.99.0.0/16' });
    await a.close();
    await b.close();
    return { first, second };
  },
  // A node that comes back while its record lives gets its subnet (and its join time) back on a new lease.
  async restart() {
    const a = open();
    await a.ensureConfig(cfg);
    await join(a, 'n9');
    const first = await join(a, 'n1', 30);
    const other = await join(a, 'n2', 30);
    await a.close(); // the agent dies without releasing
    const b = open();
    const again = await join(b, 'n1', 30);
    const snap = await b.list({ withTtl: true });
    await b.close();
    return {
      first: first.record,
      again: again.record,
      other: other.record.subnet,
      sameLease: first.id === again.id,
      records: snap.records.filter((r) => r.node === 'n1').length,
      ttlLeft: snap.records.find((r) => r.node === 'n1')?.ttlLeft,
    };
  },
  // A lease not renewed expires after its TTL and watchers see the delete; a renewed one stays; released is gone.
  async ttl() {
    const s = open();
    await s.ensureConfig(cfg);
    const start = await s.list();
    const events: string[] = [];
    const w = s.watch(
      start.revision,
      (e) => events.push(e.type === 'put' ? `put ${e.record.node}` : `delete ${e.subnet}`),
      () => {},
    );
    const lapsing = await join(s, 'n1', 2);
    const renewed = await join(s, 'n2', 2);
    const released = await join(s, 'n3', 30);
    await s.release(released);
    const renewals: boolean[] = [];
    for (let i = 0; i < 8; i++) {
      await sleep(500);
      renewals.push(await s.renew(renewed));
    }
    const snap = await s.list();
    const renewLapsed = await s.renew(lapsing);
    w.close();
    await s.close();
    return {
      left: snap.records.map((r) => r.node).sort(),
      renewals,
      renewLapsed,
      events,
      lapsedSubnet: lapsing.record.subnet,
      releasedSubnet: released.record.subnet,
    };
  },
  // A lapsed node asking for its previous subnet gets it while it is free.
  async preferred() {
    const s = open('/p');
    await s.ensureConfig(cfg);
    const lease = await join(s, 'n1', 30, '10.244.3.0/24');
    await s.close();
    return { subnet: lease.record.subnet };
  },
  async listOnly() {
    const s = open();
    const snap = await s.list();
    await s.close();
    return { count: snap.records.length };
  },
};

const run = scenarios[scenario];
if (!run) throw new Error(`unknown scenario ${scenario}`);
try {
  console.log(JSON.stringify(await run()));
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ error: (err as Error).message }));
  process.exit(0);
}
