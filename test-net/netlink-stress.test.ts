/**
 * Netlink answers cannot cross between calls: one long-lived process (the host namespace its own, as the CNI
 * daemon runs) makes many calls at once on a machine loaded by CPU hogs, and checks every answer
 * (test-net/netlink-stress-worker.ts). Link deletes that ask for the kernel's echo run in container namespaces
 * meanwhile: the kernel echoes the peer's removal into the host namespace, to a port ID a socket of ours there
 * may hold. Before sequence numbers were unique per process and answers were checked, this found a bridge
 * lookup answered with a veth in every run.
 */
import { spawn } from 'node:child_process';
import test from 'ava';
import { startCpuHogs } from './load.js';
import { createNetns, netnsPath, repoRoot } from './sandbox.js';

const seconds = 12;
const containers = 4;

interface Summary {
  calls: number;
  wrong: number;
  errors: number;
  deletes: number;
  strays: number;
  samples: string[];
}

function runWorker(
  host: string,
  bridge: string,
  nss: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'nsenter',
      [
        `--net=${netnsPath(host)}`,
        process.execPath,
        '--import',
        'tsx',
        'test-net/netlink-stress-worker.ts',
        String(seconds),
        bridge,
        ...nss,
      ],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 60) * 1000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('concurrent calls in one process on a loaded machine: every netlink answer is the one asked for', async (t) => {
  const host = await createNetns(t, 'nsh');
  const nss: string[] = [];
  for (let i = 0; i < containers; i++) nss.push(netnsPath(await createNetns(t, `nsc${i}`)));
  startCpuHogs(t, seconds + 10);
  const r = await runWorker(host, 'stbr0', nss);
  t.is(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as Summary;
  t.log(
    `${summary.calls} calls (${summary.deletes} echoed deletes), ${summary.wrong} wrong answers, ${summary.errors} errors, ${summary.strays} stray messages dropped`,
  );
  t.deepEqual(summary.samples, []);
  t.is(summary.wrong, 0);
  t.is(summary.errors, 0);
  // The run did what it is about: deletes whose echoes reach the host namespace, next to many lookups there.
  t.true(summary.deletes >= 20, `only ${summary.deletes} deletes ran`);
  t.true(summary.calls >= 200, `only ${summary.calls} calls ran`);
});
