/**
 * etcd for integration tests: Debian's /usr/bin/etcd started inside a sandbox namespace the test made, with a
 * temp data dir, stopped by PID (and again at teardown). It can be killed and started again on the same data
 * dir, as a real outage and recovery.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { netnsPath, tempDir } from './sandbox.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export const etcdBin = '/usr/bin/etcd';

export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdServer {
  /** The client URL in the form `ctnet node --store` takes (etcd:// or etcds://). */
  storeUrl: string;
  ip: string;
  start(): Promise<void>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  readonly pid: number | undefined;
}

/** An etcd listening on `ip`:2379 in namespace `ns`; with `tls`, clients need a certificate signed by its CA. */
export async function startEtcd(t: Teardown, ns: string, ip: string, tls?: { server: EtcdTlsFiles }): Promise<EtcdServer> {
  const dir = tempDir(t, 'etcd');
  const scheme = tls ? 'https' : 'http';
  let child: ChildProcess | undefined;
  const args = [
    `--net=${netnsPath(ns)}`,
    etcdBin,
    '--name',
    'ctt',
    '--data-dir',
    join(dir, 'data'),
    '--listen-client-urls',
    `${scheme}://${ip}:2379`,
    '--advertise-client-urls',
    `${scheme}://${ip}:2379`,
    '--listen-peer-urls',
    'http://127.0.0.1:2380',
    '--initial-advertise-peer-urls',
    'http://127.0.0.1:2380',
    '--initial-cluster',
    'ctt=http://127.0.0.1:2380',
    '--log-level',
    'info',
    ...(tls
      ? ['--client-cert-auth', '--trusted-ca-file', tls.server.ca, '--cert-file', tls.server.cert, '--key-file', tls.server.key]
      : []),
  ];
  const server: EtcdServer = {
    storeUrl: `${tls ? 'etcds' : 'etcd'}://${ip}:2379`,
    ip,
    get pid() {
      return child?.pid;
    },
    async start() {
      const c = spawn('nsenter', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      await new Promise<void>((resolve, reject) => {
        let log = '';
        const timer = setTimeout(() => reject(new Error(`etcd did not become ready:\n${log.slice(-2000)}`)), 20_000);
        c.stderr?.on('data', (d: Buffer) => {
          log += d.toString();
          if (/ready to serve client requests/.test(log)) {
            clearTimeout(timer);
            c.stderr?.removeAllListeners('data');
            c.stderr?.resume();
            resolve();
          }
        });
        c.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`etcd exited with ${code}:\n${log.slice(-2000)}`));
        });
      });
    },
    async kill() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    },
  };
  t.teardown(() => server.kill());
  await server.start();
  return server;
}
