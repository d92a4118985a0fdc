/**
 * Isolation between ctnet networks (Docker's model: containers on different user-defined networks
 * cannot reach each other). Two chains of our own in the filter table, one jump from FORWARD:
 *
 *   FORWARD            -j CTNET-ISOLATION-1                    (once: right after CTNET-ADMIN, else first)
 *   CTNET-ISOLATION-1  -i <br> ! -o <br> -j CTNET-ISOLATION-2  (per isolated bridge)
 *   CTNET-ISOLATION-2  -o <br> -j DROP                         (per isolated bridge)
 *
 * so a packet leaving one isolated bridge for another is dropped, while traffic to the host's
 * uplink passes. The chains are rebuilt as a whole from the network list (one iptables-restore
 * batch per family), so the result never depends on what was there before.
 * The chain names are part of the on-host contract (doctor and trace read them).
 */
import { CtnetError, ErrorCode, run } from '../core/index.js';

export const isolationChain1 = 'CTNET-ISOLATION-1';
export const isolationChain2 = 'CTNET-ISOLATION-2';

export type IptablesFamily = 'iptables' | 'ip6tables';

/** The restore batch for a set of isolated bridges. */
export function isolationBatch(bridges: readonly string[]): string {
  const lines = ['*filter', `:${isolationChain1} - [0:0]`, `:${isolationChain2} - [0:0]`];
  for (const br of bridges) lines.push(`-A ${isolationChain1} -i ${br} ! -o ${br} -j ${isolationChain2}`);
  for (const br of bridges) lines.push(`-A ${isolationChain2} -o ${br} -j DROP`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

async function hasJump(family: IptablesFamily): Promise<boolean> {
  const r = await run(family, ['-w', '-t', 'filter', '-C', 'FORWARD', '-j', isolationChain1], {
    allowFailure: true,
    timeoutMs: 10_000,
  });
  return r.code === 0;
}

/** Rebuilds the isolation chains for `bridges` in the current namespace; removes them when empty. */
export async function syncIsolation(
  bridges: readonly string[],
  families: IptablesFamily[] = ['iptables', 'ip6tables'],
): Promise<void> {
  for (const family of families) {
    try {
      if (bridges.length === 0) {
        await removeIsolation(family);
        continue;
      }
      await run(`${family}-restore`, ['-w', '--noflush'], { input: isolationBatch(bridges), timeoutMs: 10_000 });
      if (!(await hasJump(family))) {
        const position = String(await jumpPosition(family));
        await run(family, ['-w', '-t', 'filter', '-I', 'FORWARD', position, '-j', isolationChain1], { timeoutMs: 10_000 });
      }
    } catch (cause) {
      throw new CtnetError(ErrorCode.io, `failed to update ${family} isolation rules: ${(cause as Error).message}`, { cause });
    }
  }
}

/** Where the jump goes: right after the admin chain's jump (the admin's rules come first), else first. */
async function jumpPosition(family: IptablesFamily): Promise<number> {
  const r = await run(family, ['-w', '-t', 'filter', '-S', 'FORWARD'], { timeoutMs: 10_000 });
  const rules = r.stdout.split('\n').filter((l) => l.startsWith('-A FORWARD '));
  return rules.findIndex((l) => / -j CTNET-ADMIN$/.test(l)) + 2;
}

async function removeIsolation(family: IptablesFamily): Promise<void> {
  while (await hasJump(family))
    await run(family, ['-w', '-t', 'filter', '-D', 'FORWARD', '-j', isolationChain1], { timeoutMs: 10_000 });
  for (const chain of [isolationChain1, isolationChain2]) {
    await run(family, ['-w', '-t', 'filter', '-F', chain], { allowFailure: true, timeoutMs: 10_000 });
    await run(family, ['-w', '-t', 'filter', '-X', chain], { allowFailure: true, timeoutMs: 10_000 });
  }
}

/** Which bridges the isolation chains currently hold, and whether FORWARD jumps to them. */
export async function readIsolation(family: IptablesFamily = 'iptables'): Promise<{ jump: boolean; bridges: string[] }> {
  const r = await run(family, ['-w', '-t', 'filter', '-S', isolationChain2], { allowFailure: true, timeoutMs: 10_000 });
  const bridges = r.code === 0 ? [...r.stdout.matchAll(/-o (\S+) -j DROP/g)].map((m) => m[1] as string) : [];
  return { jump: await hasJump(family), bridges };
}
