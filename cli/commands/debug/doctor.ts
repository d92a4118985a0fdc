/** `ctnet debug doctor [--fix]`: host prerequisites and leftovers of crashes, and their removal. */

import { readFileSync } from 'node:fs';
import { DefaultExecutor } from '../../../core/index.js';
import { agentFinding, applyFixes, diagnose, type Finding } from '../../../debug/index.js';
import { ctnetPaths } from '../../../network/index.js';
import { builtinPlugins } from '../../../plugins/index.js';
import { printJson, printTable } from '../../output.js';
import { builtAgentSocket } from '../agent.js';
import { cniPathOf } from './cni.js';

/** The unix sockets of this network namespace (empty if /proc is unreadable: the check then says "no daemon"). */
function readProcNetUnix(): string {
  try {
    return readFileSync('/proc/net/unix', 'latin1');
  } catch {
    return '';
  }
}

const order: Record<Finding['severity'], number> = { problem: 0, warn: 1, info: 2, ok: 3 };

export async function debugDoctor(opts: { fix?: boolean; json?: boolean; cniPath?: string }): Promise<void> {
  const paths = ctnetPaths();
  const findings = await diagnose(paths);
  findings.push(agentFinding(readProcNetUnix(), builtAgentSocket()));
  let fixed: Awaited<ReturnType<typeof applyFixes>> = [];
  if (opts.fix && findings.some((f) => f.fix)) {
    fixed = await applyFixes(findings, paths, new DefaultExecutor(builtinPlugins), cniPathOf(opts.cniPath));
  }
  const failedFixes = fixed.filter((f) => f.error);
  const open = opts.fix
    ? findings.filter((f) => f.severity === 'problem' && !f.fix)
    : findings.filter((f) => f.severity === 'problem');
  if (opts.json) printJson({ findings, fixed });
  else {
    const sorted = [...findings].sort((a, b) => order[a.severity] - order[b.severity]);
    printTable(
      ['CHECK', 'STATUS', 'DETAIL', 'HINT'],
      sorted.map((f) => [
        f.check,
        f.severity === 'ok' ? 'ok' : f.severity.toUpperCase(),
        f.detail,
        f.fix && !opts.fix ? 'fixable with --fix' : (f.hint ?? ''),
      ]),
    );
    if (fixed.length) {
      process.stdout.write('\n');
      for (const f of fixed) process.stdout.write(f.error ? `FAILED  ${f.detail}: ${f.error}\n` : `fixed   ${f.detail}\n`);
    }
  }
  if (failedFixes.length || open.length) {
    const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
    const what = failedFixes.length
      ? count(failedFixes.length, 'fix failed', 'fixes failed')
      : count(open.length, 'problem found', 'problems found');
    process.stderr.write(`ctnet: doctor: ${what}\n`);
    if (!opts.fix && open.some((f) => f.fix)) process.stderr.write('hint: ctnet debug doctor --fix removes the leftovers\n');
    process.exitCode = 1;
  }
}
