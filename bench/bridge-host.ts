/**
 * The bridge plugin's kernel work, call by call, with N containers already on its bridge: which of ADD's and DEL's
 * netlink requests and sysctl writes grow with N.
 *
 * For each N, a sandbox host namespace (ctb-…-h) gets N containers, each in its own namespace, added by the plugin
 * itself (bridge + host-local, in-process, as the agent runs them), so the host holds exactly what the plugin
 * leaves: veths on the bridge, their sysctl state, the containers' /proc/sys lookups. Then ONE long-lived Node process
 * inside that namespace (nsenter … node --import tsx bench/bridge-host.ts --probe) runs ADD then DEL of one more
 * container per round and times every netns/ call the plugin makes (Netlink methods; sysctl file opens, reads and
 * writes), per round, plus the whole ADD and DEL and the IPAM share of them.
 *
 * --before DIR runs the same with the code in DIR (a checkout of an earlier commit, its node_modules linked) beside
 * this tree's, population and all, so the two are measured on the same machine in the same run.
 * Everything is in namespaces named ctb-…, removed at the end (also on Ctrl-C or failure).
 *
 * --masq iptables|nftables adds the bridge's own masquerade (ipMasq) through that backend, as bench/portmap.ts has it.
 *
 * Usage: node --import tsx bench/bridge-host.ts [--n 0,1000] [--rounds 30] [--before DIR] [--masq nftables]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, median, netns, opt, repo, sh, tempDir } from './common.js';

const bridge = 'ctb0';

interface ProbeResult {
  /** label → median over rounds of that round's total ms (labels "add: …", "del: …"). */
  ops: Record<string, number>;
  /** label → median calls per round. */
  calls: Record<string, number>;
}

async function drive(): Promise<void> {
  const populations = opt('n', '0,1000').split(',').map(Number);
  const rounds = Number(opt('rounds', '30'));
  const before = opt('before', '');
  const versions = [...(before ? [{ label: 'before', root: before }] : []), { label: 'after', root: repo }];
  const results: Record<string, ProbeResult> = {};
  try {
    for (const n of populations) {
      for (const v of versions) {
        const host = netns('h');
        sh('nsenter', [`--net=/run/netns/${host}`, 'ip', 'link', 'set', 'lo', 'up']);
        const t0 = Date.now();
        const pop = Array.from({ length: n }, (_, i) => netns(`p${i}`));
        const ctrs = Array.from({ length: rounds + 2 }, (_, i) => netns(`r${i}`));
        const dir = tempDir(mkdtempSync(join(tmpdir(), 'ctb-bh-')));
        writeFileSync(join(dir, 'names.json'), JSON.stringify({ pop, ctrs }));
        const r = spawnSync(
          'nsenter',
          [
            `--net=/run/netns/${host}`,
            process.execPath,
            '--import',
            'tsx',
            join(repo, 'bench', 'bridge-host.ts'),
            '--probe',
            '--root',
            v.root,
            '--dir',
            dir,
            ...(opt('masq', '') ? ['--masq', opt('masq', '')] : []),
          ],
          { encoding: 'utf8', cwd: v.root, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
        );
        if (r.status !== 0) throw new Error(`probe (${v.label}) at N=${n} failed (${r.status})`);
        results[`${v.label} N=${n}`] = JSON.parse(r.stdout) as ProbeResult;
        process.stderr.write(`${v.label} N=${n}: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
        cleanup();
      }
    }
  } finally {
    cleanup();
  }
  const cols = Object.keys(results);
  const labels = [...new Set(cols.flatMap((c) => Object.keys(results[c]?.ops ?? {})))].sort(byPhase);
  console.log(`bridge ADD and DEL in one long-lived process, medians over ${rounds} rounds of each round's total ms (calls)`);
  console.log(`${'netns/ call'.padEnd(46)}${cols.map((c) => c.padStart(18)).join('')}`);
  for (const label of labels) {
    const cells = cols.map((c) => {
      const ms = results[c]?.ops[label];
      const calls = results[c]?.calls[label];
      return (ms === undefined ? '-' : `${ms.toFixed(3)} (${calls})`).padStart(18);
    });
    console.log(`${label.padEnd(46)}${cells.join('')}`);
  }
}

/** "add: …" before "del: …", whole-call rows last in each. */
function byPhase(a: string, b: string): number {
  const key = (s: string) => `${s.startsWith('del') ? 1 : 0}${s.includes('TOTAL') || s.includes('IPAM') ? 1 : 0}${s}`;
  return key(a).localeCompare(key(b));
}

/** Device names vary per round: one label per kind of key. */
function normalize(text: string): string {
  return text.replace(/veth[0-9a-f]{8}/g, 'veth*').replace(/\/proc\/self\/fd\/\d+\//, '<kept dir>/');
}

/** Inside the host namespace: populates, then times every netns/ call of ADD and DEL, round by round. */
async function probe(): Promise<void> {
  const root = opt('root', repo);
  const masq = opt('masq', '');
  const dir = opt('dir', '');
  const { readFileSync } = await import('node:fs');
  const { pop, ctrs } = JSON.parse(readFileSync(join(dir, 'names.json'), 'utf8')) as { pop: string[]; ctrs: string[] };
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const fs = (await import('node:fs')).default;
  const { syncBuiltinESMExports } = await import('node:module');
  const inCall = new AsyncLocalStorage<boolean>();
  let round: Map<string, { ms: number; calls: number }> | undefined;
  let phase = 'add';
  const record = (label: string, ms: number) => {
    if (!round) return;
    const key = `${phase}: ${label}`;
    const e = round.get(key) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    round.set(key, e);
  };
  /** Times each call of fn; calls made inside another timed call belong to that one (nested: false for whole-plugin timers). */
  const timed = <A extends unknown[], R>(label: (args: A) => string, fn: (...args: A) => R, nested = true) =>
    function (this: unknown, ...args: A): R {
      if (inCall.getStore()) return fn.apply(this, args);
      const t0 = process.hrtime.bigint();
      const done = () => record(label(args), Number(process.hrtime.bigint() - t0) / 1e6);
      const result = nested ? inCall.run(true, () => fn.apply(this, args)) : fn.apply(this, args);
      if (result instanceof Promise) return result.finally(done) as R;
      done();
      return result;
    };
  // Sysctl file work: whichever module does it, it goes through node:fs.
  const isSysctl = (p: unknown) => typeof p === 'string' && (p.startsWith('/proc/sys/') || p.startsWith('/proc/self/fd/'));
  for (const [name, verb] of [
    ['writeFileSync', 'write'],
    ['readFileSync', 'read'],
    ['openSync', 'open'],
  ] as const) {
    const orig = fs[name] as (...a: unknown[]) => unknown;
    (fs as unknown as Record<string, unknown>)[name] = function (this: unknown, ...a: unknown[]) {
      if (!isSysctl(a[0])) return orig.apply(this, a);
      return timed(() => `sysctl ${verb} ${normalize(String(a[0]))}`, orig).apply(this, a);
    };
  }
  syncBuiltinESMExports();
  const { Netlink } = await import(join(root, 'netns', 'netlink.ts'));
  const methods = Object.getOwnPropertyNames(Netlink.prototype).filter(
    (m) => !['constructor', 'close', 'request', 'dump', 'where'].includes(m),
  );
  for (const m of methods) {
    const d = Object.getOwnPropertyDescriptor(Netlink.prototype, m);
    if (typeof d?.value !== 'function') continue;
    // updateLink does different work by what it changes (up with carrier announces the link): one row per kind.
    const what = (args: unknown[]) =>
      m === 'updateLink'
        ? ` {${Object.keys((args[1] ?? {}) as object)
            .filter((k) => (args[1] as Record<string, unknown>)[k] !== undefined)
            .join(',')}}`
        : '';
    Netlink.prototype[m] = timed((args: unknown[]) => `netlink ${m}${what(args)}`, d.value);
  }
  const { InProcessExecutor, handle } = await import(join(root, 'core', 'index.ts'));
  const { builtinPlugins } = await import(join(root, 'plugins', 'registry.ts'));
  const executor = new InProcessExecutor(builtinPlugins);
  const invoke = executor.invoke.bind(executor);
  executor.invoke = (type: string, env: Record<string, string>, stdin: string) =>
    timed(() => `IPAM ${type} (in-process)`, invoke, false)(type, env, stdin);
  const plugin = await executor.plugin('bridge');
  const conf = {
    cniVersion: '1.0.0',
    name: 'benchnet',
    type: 'bridge',
    bridge,
    isGateway: true,
    isDefaultGateway: true,
    hairpinMode: true,
    ...(masq && { ipMasq: true, ipMasqBackend: masq }),
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.123.0.0/16' }]], dataDir: join(dir, 'ipam') },
  };
  const call = async (command: string, ctr: string, stdin: unknown) => {
    const env = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: ctr,
      CNI_NETNS: `/run/netns/${ctr}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/nonexistent',
    };
    const r = await handle(plugin, env, JSON.stringify(stdin), executor);
    if (r.exitCode !== 0) throw new Error(`${command} ${ctr} failed: ${r.stdout}`);
    return r.stdout as string;
  };
  const t0 = Date.now();
  for (const ctr of pop) await call('ADD', ctr, conf);
  if (pop.length) {
    process.stderr.write(`  populated ${pop.length} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    // The last containers' router solicitations and DAD settle before the first round.
    await new Promise((r) => setTimeout(r, 3000));
  }
  const perRound: Map<string, { ms: number; calls: number }>[] = [];
  for (const [i, ctr] of ctrs.entries()) {
    round = new Map();
    phase = 'add';
    const added = await timed(() => 'TOTAL plugin ADD', call, false)('ADD', ctr, conf);
    phase = 'del';
    await timed(() => 'TOTAL plugin DEL', call, false)('DEL', ctr, { ...conf, prevResult: JSON.parse(added) });
    if (i >= 2) perRound.push(round);
    round = undefined;
    // The runtime deletes the namespace after DEL; its cleanup runs in the kernel's workqueue meanwhile.
    spawnSync('ip', ['netns', 'del', ctr]);
  }
  const labels = new Set(perRound.flatMap((r) => [...r.keys()]));
  const out: ProbeResult = { ops: {}, calls: {} };
  for (const label of labels) {
    out.ops[label] = median(perRound.map((r) => r.get(label)?.ms ?? 0));
    out.calls[label] = median(perRound.map((r) => r.get(label)?.calls ?? 0));
  }
  process.stdout.write(JSON.stringify(out));
}

if (process.argv.includes('--probe')) await probe();
else await drive();
