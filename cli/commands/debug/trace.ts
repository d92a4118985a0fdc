/** `ctnet debug trace <container> <port>[/proto] [--from …]`: the published path, hop by hop. */
import { traceTarget } from '../../../debug/index.js';
import { ctnetPaths } from '../../../network/index.js';
import { tracePod } from '../../../node/index.js';
import { printJson, printTable } from '../../output.js';

const marks = { ok: 'ok', broken: 'BROKEN', skipped: '-' } as const;

export async function debugTrace(container: string, port: string, opts: { from?: string; json?: boolean }): Promise<void> {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(port)) return tracePodIp(container, port, opts);
  const report = await traceTarget(container, port, opts.from, ctnetPaths());
  const broken = report.firstBroken === undefined ? undefined : report.hops[report.firstBroken];
  if (opts.json) printJson(report);
  else {
    process.stdout.write(`trace ${report.from} -> ${report.container} ${report.port}/${report.protocol}\n\n`);
    printTable(
      ['#', 'HOP', 'STATUS', 'DETAIL'],
      report.hops.map((h, i) => [i + 1, h.name, marks[h.status], h.detail]),
    );
    if (!broken) process.stdout.write('\nevery hop is in place\n');
  }
  // A broken hop is a finding, not a failure of ctnet: one line saying which, its hint, exit status 1.
  if (broken) {
    process.stderr.write(`ctnet: broken at hop ${(report.firstBroken ?? 0) + 1} (${broken.name}): ${broken.detail}\n`);
    if (broken.hint) process.stderr.write(`hint: ${broken.hint}\n`);
    process.exitCode = 1;
  }
}

/** `ctnet debug trace <container> <pod IP>`: the path to a pod on another node of the cluster (`ctnet node`). */
async function tracePodIp(container: string, ip: string, opts: { json?: boolean }): Promise<void> {
  const report = await tracePod(container, ip, ctnetPaths());
  const broken = report.firstBroken === undefined ? undefined : report.hops[report.firstBroken];
  if (opts.json) printJson(report);
  else {
    const via = report.peer ? ` (node ${report.peer.node}, ${report.peer.mode})` : '';
    process.stdout.write(`trace ${report.from} -> ${report.target}${via}\n\n`);
    printTable(
      ['#', 'HOP', 'STATUS', 'DETAIL'],
      report.hops.map((h, i) => [i + 1, h.name, marks[h.status], h.detail]),
    );
    if (!broken) process.stdout.write('\nevery hop on this node is in place\n');
  }
  if (broken) {
    process.stderr.write(`ctnet: broken at hop ${(report.firstBroken ?? 0) + 1} (${broken.name}): ${broken.detail}\n`);
    if (broken.hint) process.stderr.write(`hint: ${broken.hint}\n`);
    process.exitCode = 1;
  }
}
