/**
 * Runs firewall operations inside a sandbox namespace for the integration tests: the test starts this file under
 * `nsenter --net=/run/netns/<sandbox>` and sends `{backend, ops: [{op, arg}]}` on stdin; it prints one result per op.
 * It refuses to run in the machine's own network namespace (the library would change the host's firewall there).
 */
import { readFileSync } from 'node:fs';
import { CtnetError } from '../core/index.js';
import { type Firewall, type FirewallBackendName, openFirewall } from '../iptables/index.js';
import { refuseRootNetns } from './driver-guard.js';

interface Request {
  backend: FirewallBackendName | 'auto';
  ops: { op: string; arg: unknown[] }[];
}

refuseRootNetns('firewall-driver');

// Lets a test hide programs (e.g. nft) from the library without hiding nsenter from the test.
if (process.env.FIREWALL_DRIVER_PATH !== undefined) process.env.PATH = process.env.FIREWALL_DRIVER_PATH;

const req = JSON.parse(readFileSync(0, 'utf8')) as Request;
const results: unknown[] = [];
let fw: Firewall | undefined;
try {
  fw = await openFirewall(req.backend);
} catch (err) {
  const e = err as CtnetError;
  results.push({ ok: false, code: e.code, message: e.message });
}
if (fw) {
  for (const { op, arg } of req.ops) {
    const t0 = performance.now();
    try {
      const fn = (fw as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[op];
      if (typeof fn !== 'function') throw new Error(`no such operation ${op}`);
      const value = await fn.apply(fw, arg);
      results.push({ ok: true, value, ms: performance.now() - t0 });
    } catch (err) {
      const e = err as CtnetError;
      results.push({
        ok: false,
        code: e instanceof CtnetError ? e.code : undefined,
        message: e.message,
        ms: performance.now() - t0,
      });
    }
  }
}
// Which way nft scripts reached the kernel (libnftables or the program), for the nftables backend.
const driver = (fw as { exec?: { driver?: string } } | undefined)?.exec?.driver;
process.stdout.write(`${JSON.stringify({ backend: fw?.backend, driver, results })}\n`);
