/**
 * The subnet store on etcd 3. Keys (part of the on-cluster contract, under a prefix, default /ctnet/network):
 *
 *   <prefix>/config                  ClusterConfig as JSON, written once by the first node (create-if-absent)
 *   <prefix>/subnets/<a.b.c.d>-<len> NodeRecord as JSON, attached to an etcd lease with the node's TTL
 *
 * A subnet is taken with a transaction that puts its key only if the key has never been created (create_revision
 * 0): etcd serializes transactions, so of two nodes racing for one subnet exactly one wins and the other picks
 * again. A node that restarts finds its record by node name and moves it onto a new lease in a transaction that
 * holds only while the record is unchanged. The lease expires with its TTL unless renewed: then etcd deletes the
 * record and every watcher sees the delete.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Etcd3, IKeyValue, IOptions, Watcher } from 'etcd3';
import { CtnetError, ErrorCode } from '../core/index.js';
import type {
  AcquireRequest,
  ClusterConfig,
  NodeRecord,
  Snapshot,
  StoredRecord,
  StoreEvent,
  StoreWatch,
  SubnetLease,
  SubnetStore,
} from './store.js';
import { candidateSubnets, parseCidr4 } from './subnets.js';

export const defaultStorePrefix = '/ctnet/network';

export interface EtcdTls {
  ca: string;
  cert?: string;
  key?: string;
}

export interface EtcdStoreOptions {
  /** etcd://HOST:PORT[,HOST:PORT…] (http), or http(s):// URLs separated by commas. */
  url: string;
  prefix?: string;
  /** CA, client certificate and key files (PEM): the connection uses TLS and authenticates with the certificate. */
  tls?: EtcdTls;
  /** Deadline of each request in milliseconds. */
  timeoutMs?: number;
}

/** The hosts an --store URL names, with the scheme the client needs. */
export function parseStoreUrl(url: string, tls: boolean): string[] {
  const m = /^(etcd|etcds|http|https):\/\/(.+)$/.exec(url.trim());
  if (!m) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid store "${url}": expected etcd://HOST:PORT[,HOST:PORT…]`, {
      hint: 'for example --store etcd://10.0.0.10:2379 (etcds:// or --etcd-cafile for TLS)',
    });
  }
  const secure = tls || m[1] === 'etcds' || m[1] === 'https';
  const hosts = (m[2] as string)
    .split(',')
    .map((h) =>
      h
        .trim()
        .replace(/^(etcd|etcds|http|https):\/\//, '')
        .replace(/\/+$/, ''),
    )
    .filter(Boolean);
  if (!hosts.length || hosts.some((h) => !/^[\w.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(h))) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid store "${url}": expected HOST:PORT entries separated by commas`);
  }
  return hosts.map((h) => `${secure ? 'https' : 'http'}://${/:\d+$/.test(h) ? h : `${h}:2379`}`);
}

function subnetKey(subnet: string): string {
  return subnet.replace('/', '-');
}

function subnetOfKey(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const i = name.lastIndexOf('-');
  return `${name.slice(0, i)}/${name.slice(i + 1)}`;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new CtnetError(ErrorCode.io, `failed to read the etcd ${what} ${file}: ${(cause as Error).message}`, { cause });
  }
}

export class EtcdStore implements SubnetStore {
  readonly where: string;
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(opts: EtcdStoreOptions) {
    const hosts = parseStoreUrl(opts.url, opts.tls !== undefined);
    this.where = `etcd at ${hosts.join(',')}`;
    this.prefix = (opts.prefix ?? defaultStorePrefix).replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 5000;
    const options: IOptions = {
      hosts,
      dialTimeout: this.timeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
    };
    if (opts.tls) {
      options.credentials = {
        rootCertificate: readPem(opts.tls.ca, 'CA file'),
        ...(opts.tls.cert && { certChain: readPem(opts.tls.cert, 'client certificate') }),
        ...(opts.tls.key && { privateKey: readPem(opts.tls.key, 'client key') }),
      };
    }
    // Loaded on first use: the client and gRPC cost ~100 ms to load, which no other command should pay.
    const { Etcd3: Client } = createRequire(import.meta.url)('etcd3') as typeof import('etcd3');
    this.client = new Client(options);
  }

  private key(...parts: string[]): Buffer {
    return Buffer.from([this.prefix, ...parts].join('/'));
  }

  private fail(what: string, cause: unknown): CtnetError {
    if (cause instanceof CtnetError) return cause;
    return new CtnetError(ErrorCode.io, `failed to ${what} (${this.where}): ${(cause as Error)?.message ?? cause}`, {
      cause,
      hint: 'is etcd running and reachable from this host? (--store, and --etcd-cafile/--etcd-certfile/--etcd-keyfile for TLS)',
    });
  }

  async readConfig(): Promise<ClusterConfig | undefined> {
    try {
      const text = await this.client.get(this.key('config').toString()).string();
      return text === null ? undefined : parseConfig(text);
    } catch (err) {
      throw this.fail('read the cluster config', err);
    }
  }

  async ensureConfig(proposed: ClusterConfig): Promise<ClusterConfig> {
    try {
      const key = this.key('config');
      const res = await this.client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value: Buffer.from(JSON.stringify(proposed)) } }],
        failure: [{ request_range: { key } }],
      });
      if (res.succeeded) return proposed;
      const kv = res.responses[0]?.response_range.kvs[0];
      if (!kv) throw new Error('the config key vanished');
      return parseConfig(kv.value.toString());
    } catch (err) {
      throw this.fail('write the cluster config', err);
    }
  }

  async acquire(cfg: ClusterConfig, req: AcquireRequest): Promise<SubnetLease> {
    const cluster = parseCidr4(cfg.clusterCidr, 'cluster CIDR');
    for (let attempt = 0; attempt < 20; attempt++) {
      const { kvs } = await this.rangeSubnets();
      const mine = kvs.find((kv) => parseRecord(kv)?.node === req.node);
      const leaseId = await this.grant(req.ttl);
      try {
        if (mine) {
          const old = parseRecord(mine) as NodeRecord;
          const record: NodeRecord = { ...old, nodeIp: req.nodeIp, backend: req.backend, vtepMac: req.vtepMac };
          if (!req.vtepMac) delete record.vtepMac;
          const res = await this.client.kv.txn({
            compare: [{ key: mine.key, target: 'Mod', result: 'Equal', mod_revision: mine.mod_revision }],
            success: [{ request_put: { key: mine.key, value: Buffer.from(JSON.stringify(record)), lease: leaseId } }],
          });
          if (res.succeeded) {
            // The previous agent's lease now holds nothing: end it rather than wait for its TTL.
            if (mine.lease !== '0') await this.client.leaseClient.leaseRevoke({ ID: mine.lease }).catch(() => undefined);
            return { record, id: leaseId, ttl: req.ttl };
          }
        } else {
          const taken = new Set(kvs.map((kv) => subnetOfKey(kv.key.toString())));
          const candidates = candidateSubnets(cluster, cfg.subnetSize, taken, req.preferred);
          if (!candidates.length) {
            throw new CtnetError(
              ErrorCode.noAddressesLeft,
              `failed to lease a subnet for node "${req.node}": every /${cfg.subnetSize} of ${cfg.clusterCidr} is taken (${taken.size} nodes)`,
              { hint: 'remove departed nodes (`ctnet node ls`), or use a larger cluster CIDR' },
            );
          }
          for (const subnet of candidates) {
            const key = this.key('subnets', subnetKey(subnet));
            const record: NodeRecord = {
              node: req.node,
              nodeIp: req.nodeIp,
              subnet,
              backend: req.backend,
              ...(req.vtepMac && { vtepMac: req.vtepMac }),
              since: new Date().toISOString(),
            };
            const res = await this.client.kv.txn({
              compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
              success: [{ request_put: { key, value: Buffer.from(JSON.stringify(record)), lease: leaseId } }],
            });
            if (res.succeeded) return { record, id: leaseId, ttl: req.ttl };
          }
        }
      } catch (err) {
        await this.client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
        throw this.fail(`lease a subnet for node "${req.node}"`, err);
      }
      // Lost every race this round (or our record changed under us): nothing holds the lease; read again.
      await this.client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
    }
    throw new CtnetError(ErrorCode.tryAgainLater, `failed to lease a subnet for node "${req.node}": too many concurrent joins`, {
      hint: 'try again',
    });
  }

  private async grant(ttl: number): Promise<string> {
    try {
      const res = await this.client.leaseClient.leaseGrant({ TTL: ttl });
      return res.ID;
    } catch (err) {
      throw this.fail('grant an etcd lease', err);
    }
  }

  async renew(lease: SubnetLease): Promise<boolean> {
    try {
      const stream = await this.client.leaseClient.leaseKeepAlive();
      try {
        const res = await new Promise<{ TTL: string }>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no answer to the keepalive')), this.timeoutMs);
          stream.on('data', (r: { TTL: string }) => {
            clearTimeout(timer);
            resolve(r);
          });
          stream.on('error', (e: Error) => {
            clearTimeout(timer);
            reject(e);
          });
          stream.write({ ID: lease.id });
        });
        return Number(res.TTL) > 0;
      } finally {
        stream.end();
      }
    } catch (err) {
      throw this.fail(`renew the lease of ${lease.record.subnet}`, err);
    }
  }

  async release(lease: SubnetLease): Promise<void> {
    try {
      const key = this.key('subnets', subnetKey(lease.record.subnet));
      // Only our own record: a node that took the subnet after our lease lapsed keeps it.
      await this.client.kv.txn({
        compare: [{ key, target: 'Lease', result: 'Equal', lease: lease.id }],
        success: [{ request_delete_range: { key } }],
      });
      await this.client.leaseClient.leaseRevoke({ ID: lease.id }).catch(() => undefined);
    } catch (err) {
      throw this.fail(`release ${lease.record.subnet}`, err);
    }
  }

  private async rangeSubnets(): Promise<{ kvs: IKeyValue[]; revision: string }> {
    const start = this.key('subnets', '');
    const end = Buffer.from(start);
    end[end.length - 1] = (end[end.length - 1] as number) + 1;
    const res = await this.client.kv.range({ key: start, range_end: end });
    return { kvs: res.kvs, revision: res.header.revision };
  }

  async list(opts: { withTtl?: boolean } = {}): Promise<Snapshot> {
    try {
      const { kvs, revision } = await this.rangeSubnets();
      const records: StoredRecord[] = [];
      for (const kv of kvs) {
        const r = parseRecord(kv);
        if (!r) continue;
        const stored: StoredRecord = { ...r, ttl: 0 };
        // One request per record: only when asked (node ls), not on the agent's resyncs.
        if (opts.withTtl && kv.lease !== '0') {
          const ttl = await this.client.leaseClient.leaseTimeToLive({ ID: kv.lease }).catch(() => undefined);
          if (ttl) {
            stored.ttl = Number(ttl.grantedTTL);
            stored.ttlLeft = Number(ttl.TTL);
          }
        }
        records.push(stored);
      }
      return { records, revision };
    } catch (err) {
      throw this.fail('list the node subnets', err);
    }
  }

  watch(afterRevision: string, onEvent: (e: StoreEvent) => void, onBroken: (err: Error) => void): StoreWatch {
    let watcher: Watcher | undefined;
    let closed = false;
    let broken = false;
    const breakOnce = (err: Error) => {
      if (closed || broken) return;
      broken = true;
      void watcher?.cancel().catch(() => undefined);
      onBroken(err);
    };
    this.client
      .watch()
      .prefix(this.key('subnets', '').toString())
      .startRevision(String(BigInt(afterRevision) + 1n))
      .create()
      .then((w) => {
        watcher = w;
        if (closed) {
          void w.cancel().catch(() => undefined);
          return;
        }
        w.on('put', (kv) => {
          const record = parseRecord(kv);
          if (record) onEvent({ type: 'put', record: { ...record, ttl: 0 }, revision: kv.mod_revision });
        });
        w.on('delete', (kv) => onEvent({ type: 'delete', subnet: subnetOfKey(kv.key.toString()), revision: kv.mod_revision }));
        w.on('disconnected', (err) => breakOnce(err));
        w.on('error', (err) => breakOnce(err));
      })
      .catch((err: Error) => breakOnce(err));
    return {
      close: () => {
        closed = true;
        void watcher?.cancel().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

function parseConfig(text: string): ClusterConfig {
  const c = JSON.parse(text) as ClusterConfig;
  if (typeof c.clusterCidr !== 'string' || typeof c.subnetSize !== 'number') {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `the cluster config in the store is not one ctnet wrote: ${text.slice(0, 200)}`,
    );
  }
  return c;
}

function parseRecord(kv: IKeyValue): NodeRecord | undefined {
  try {
    const r = JSON.parse(kv.value.toString()) as NodeRecord;
    if (typeof r.node !== 'string' || typeof r.nodeIp !== 'string' || typeof r.subnet !== 'string') return undefined;
    if (r.subnet !== subnetOfKey(kv.key.toString())) return undefined;
    return r;
  } catch {
    return undefined;
  }
}
