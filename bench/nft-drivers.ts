/**
 * The nftables backend's two drivers for its nft scripts, libnftables in-process against the nft program
 * (`CTNET_NFT_DRIVER=program`), on the paths that run scripts: an attachment's first ADD in a namespace (the base
 * script), CHECK, a port forward with `conditions` (a chain per attachment: a script on ADD and DEL), GC; and an
 * ordinary ADD (set elements over netlink: no script) for reference. Each driver runs in a fresh, unnamed network
 * namespace of its own (`unshare --net`), one process, rounds alternated between the drivers. Medians in ms.
 * Usage: node --import tsx bench/nft-drivers.ts [--rounds 5] [--ops 10]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openFirewall } from '../iptables/index.js';
import { median, opt } from './common.js';

type Result = Record<string, number[]>;

async function child(ops: number): Promise<Result> {
  const fw = await openFirewall('nftables');
  const time = async (fn: () => Promise<unknown>) => {
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const key = (i: number) => ({ network: 'n', containerId: `c${i}`, ifname: 'eth0' });
  const masq = (i: number) => ({ ...key(i), addresses: [`10.9.${i >> 8}.${(i & 255) + 2}/16`], hostInterface: 'br0' });
  const out: Result = { 'first ADD': [], ADD: [], CHECK: [], 'cond. ADD': [], 'cond. DEL': [], GC: [] };
  out['first ADD']?.push(await time(() => fw.setupMasquerade(masq(0))));
  for (let i = 1; i <= ops; i++) {
    out.ADD?.push(await time(() => fw.setupMasquerade(masq(i))));
    out.CHECK?.push(await time(() => fw.checkMasquerade(masq(i))));
    const forward = {
      ...key(1000 + i),
      containerAddresses: [`10.9.200.${i}/16`],
      mappings: [{ hostPort: 9000 + i, containerPort: 80, protocol: 'tcp' as const }],
      conditions: { 4: ['ip saddr 192.0.2.0/24'] },
      hostInterface: 'br0',
    };
    out['cond. ADD']?.push(await time(() => fw.setupPortForwards(forward)));
    const known = { forwards: [{ protocol: 'tcp', hostPort: 9000 + i }], families: [4 as const] };
    out['cond. DEL']?.push(await time(() => fw.teardownPortForwards(key(1000 + i), known)));
  }
  out.GC?.push(await time(() => fw.gcMasquerade('n', [])));
  return out;
}

if (process.argv.includes('--child')) {
  process.stdout.write(JSON.stringify(await child(Number(opt('ops', '10')))));
} else {
  const rounds = Number(opt('rounds', '5'));
  const drivers = ['libnftables', 'program'] as const;
  const all: Record<string, Result> = { libnftables: {}, program: {} };
  for (let r = 0; r < rounds; r++) {
    for (const driver of drivers) {
      const env = { ...process.env, CTNET_NFT_DRIVER: driver === 'program' ? 'program' : '' };
      const self = fileURLToPath(import.meta.url);
      const p = spawnSync('unshare', ['--net', process.execPath, '--import', 'tsx', self, '--child', '--ops', opt('ops', '10')], {
        env,
        encoding: 'utf8',
      });
      if (p.status !== 0) throw new Error(`${driver}: ${p.stderr}`);
      for (const [op, ms] of Object.entries(JSON.parse(p.stdout) as Result)) {
        const per = all[driver] as Result;
        per[op] = [...(per[op] ?? []), median(ms)];
      }
    }
  }
  console.log(`nftables backend scripts by driver, ${rounds} rounds; medians in ms`);
  const ops = Object.keys(all.libnftables ?? {});
  console.log(`${'driver'.padEnd(12)} ${ops.map((o) => o.padStart(10)).join(' ')}`);
  for (const driver of drivers) {
    const per = all[driver] as Result;
    console.log(
      `${driver.padEnd(12)} ${ops
        .map((o) =>
          median(per[o] ?? [])
            .toFixed(2)
            .padStart(10),
        )
        .join(' ')}`,
    );
  }
}
