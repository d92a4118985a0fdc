/**
 * ADD then DEL latency of the chain bridge + portmap (host-local IPAM, one published TCP port per container), ours
 * against the reference plugins in /usr/lib/cni, in the same run, with N containers already attached (each
 * publishing one port). Prints every figure, the portmap share alone, and the ratios the issue sets targets for:
 * ours at N=max within 1.25× of ours at N=0, ours ≤ 0.5× the reference at N=400.
 *
 * Everything runs in sandbox namespaces named ctb-…, removed at the end (also on Ctrl-C).
 * Usage: node --import tsx bench/portmap.ts [--rounds 15] [--n 0,200,400,1000] [--backend iptables|nftables (ours, both plugins)]
 *        [--only ctnet,ctnet+agent,ctnet-nft-program,reference,before,before+agent] [--before DIR]
 * "ctnet+agent" runs `ctnet agent` in the sandbox host, so bin/cni/* hand their calls to it. `--before DIR` adds
 * the same two for another built checkout (e.g. main before a change), measured in the same run; the rounds of all
 * implementations are interleaved.
 * "CPU ADD+DEL" is the CPU time of every process a chain runs (nsenter, the plugins, what they spawn), a mean over the
 * rounds: on a loaded machine it is steadier than the wall clock. It leaves out the agent's own CPU (not our child).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callPlugin, childCpuMs, cleanup, f, median, netns, opt, repo, startAgent, tempDir } from './common.js';

const rounds = Number(opt('rounds', '15'));
const populations = opt('n', '0,200,400,1000').split(',').map(Number);
const ourBackend = opt('backend', 'iptables');
const only = opt('only', '');
const before = opt('before', '');

/** Our firewall backend for both plugins: portmap's `backend` and bridge's `ipMasqBackend`. */
const ourFirewall = { portmapExtra: { backend: ourBackend }, bridgeExtra: { ipMasqBackend: ourBackend } };

interface Impl {
  label: string;
  dir: string;
  portmapExtra: Record<string, unknown>;
  bridgeExtra: Record<string, unknown>;
  /** Runs the agent of this checkout in the sandbox host: its bin/cni/* hand their calls to it. */
  agent?: string;
  /** Extra environment of the plugin processes. */
  env?: Record<string, string>;
}
const impls: Impl[] = [
  { label: 'ctnet', dir: join(repo, 'bin', 'cni'), ...ourFirewall },
  { label: 'ctnet+agent', dir: join(repo, 'bin', 'cni'), ...ourFirewall, agent: repo },
  // The nftables backend with the nft program instead of libnftables for its scripts (iptables/nft-exec.ts).
  ...(ourBackend === 'nftables'
    ? [{ label: 'ctnet-nft-program', dir: join(repo, 'bin', 'cni'), ...ourFirewall, env: { CTNET_NFT_DRIVER: 'program' } }]
    : []),
  ...(before
    ? [
        { label: 'before', dir: join(before, 'bin', 'cni'), ...ourFirewall },
        { label: 'before+agent', dir: join(before, 'bin', 'cni'), ...ourFirewall, agent: before },
      ]
    : []),
  { label: 'reference', dir: '/usr/lib/cni', portmapExtra: {}, bridgeExtra: {} },
].filter((i) => !only || only.split(',').includes(i.label));

function bridgeConf(impl: Impl, dataDir: string) {
  return {
    ...impl.bridgeExtra,
    cniVersion: '1.0.0',
    name: 'benchnet',
    type: 'bridge',
    bridge: 'ctb0',
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: true,
    hairpinMode: true,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.123.0.0/16' }]], dataDir },
  };
}

function portmapConf(impl: Impl, stateDir: string, hostPort: number, prevResult: unknown) {
  return {
    cniVersion: '1.0.0',
    name: 'benchnet',
    type: 'portmap',
    capabilities: { portMappings: true },
    snat: true,
    stateDir,
    ...impl.portmapExtra,
    runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] },
    ...(prevResult !== undefined && { prevResult }),
  };
}

function invoke(impl: Impl, plugin: string, host: string, command: string, ctr: string, conf: unknown) {
  return callPlugin(impl.dir, plugin, host, command, ctr, JSON.stringify(conf), impl.env);
}

/** bridge ADD then portmap ADD with bridge's result as prevResult; returns both times. */
function addChain(impl: Impl, host: string, ctr: string, dataDir: string, stateDir: string, port: number) {
  const b = invoke(impl, 'bridge', host, 'ADD', ctr, bridgeConf(impl, dataDir));
  const prev = JSON.parse(b.stdout);
  const p = invoke(impl, 'portmap', host, 'ADD', ctr, portmapConf(impl, stateDir, port, prev));
  return { bridge: b.ms, portmap: p.ms, prev };
}

function delChain(impl: Impl, host: string, ctr: string, dataDir: string, stateDir: string, port: number, prev: unknown) {
  const p = invoke(impl, 'portmap', host, 'DEL', ctr, portmapConf(impl, stateDir, port, prev));
  const b = invoke(impl, 'bridge', host, 'DEL', ctr, { ...bridgeConf(impl, dataDir), prevResult: prev });
  return { bridge: b.ms, portmap: p.ms };
}

interface Row {
  impl: string;
  n: number;
  addChain: number[];
  delChain: number[];
  addPortmap: number[];
  delPortmap: number[];
  /** CPU of every process of a chain's ADD+DEL (childCpuMs: read as a mean over the rounds, never one by one). */
  cpu: number[];
}

try {
  const rows: Row[] = [];
  for (const n of populations) {
    // Every implementation is set up and populated first, then their rounds are interleaved (round r of each, then
    // round r + 1), so a drift of the machine's load hits all alike instead of whichever ran in a bad minute.
    const runs = impls.map((impl) => {
      const host = netns('h');
      spawnSync('nsenter', [`--net=/run/netns/${host}`, 'ip', 'link', 'set', 'lo', 'up']);
      if (impl.agent) startAgent(host, impl.agent);
      const dataDir = tempDir(mkdtempSync(join(tmpdir(), 'ctb-data-')));
      const stateDir = tempDir(mkdtempSync(join(tmpdir(), 'ctb-state-')));
      const t0 = Date.now();
      for (let i = 0; i < n; i++) addChain(impl, host, netns(`p${i}`), dataDir, stateDir, 20000 + i);
      process.stderr.write(`${impl.label} N=${n}: populated in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      const row: Row = { impl: impl.label, n, addChain: [], delChain: [], addPortmap: [], delPortmap: [], cpu: [] };
      return { impl, host, dataDir, stateDir, row };
    });
    for (let r = 0; r < rounds + 2; r++) {
      for (const { impl, host, dataDir, stateDir, row } of runs) {
        const ctr = netns(`r${r}`);
        const cpu0 = childCpuMs();
        const a = addChain(impl, host, ctr, dataDir, stateDir, 10000);
        const d = delChain(impl, host, ctr, dataDir, stateDir, 10000, a.prev);
        const cpu = childCpuMs() - cpu0;
        if (r >= 2) {
          row.cpu.push(cpu);
          row.addChain.push(a.bridge + a.portmap);
          row.delChain.push(d.bridge + d.portmap);
          row.addPortmap.push(a.portmap);
          row.delPortmap.push(d.portmap);
        }
      }
    }
    rows.push(...runs.map((run) => run.row));
    cleanup();
  }
  console.log(
    `bridge (ipMasq, hairpin) + portmap (1 TCP port), ${rounds} rounds each, our backend ${ourBackend}; medians in ms, wall clock incl. nsenter`,
  );
  const w = Math.max(12, ...rows.map((r) => r.impl.length));
  console.log(
    `${'impl'.padEnd(w)}    N    chain ADD  chain DEL  ADD+DEL   portmap ADD  portmap DEL  portmap ADD+DEL  CPU ADD+DEL (mean)`,
  );
  const sum = (r: Row) => median(r.addChain) + median(r.delChain);
  const psum = (r: Row) => median(r.addPortmap) + median(r.delPortmap);
  const cpu = (r: Row) => r.cpu.reduce((a, b) => a + b, 0) / r.cpu.length;
  for (const r of rows) {
    console.log(
      `${r.impl.padEnd(w)} ${String(r.n).padStart(4)}  ${f(median(r.addChain))}    ${f(median(r.delChain))}    ${f(sum(r))}   ${f(median(r.addPortmap))}      ${f(median(r.delPortmap))}      ${f(psum(r))}          ${f(cpu(r))}`,
    );
  }
  const ourLabels = impls.filter((i) => i.label !== 'reference').map((i) => i.label);
  for (const n of populations) {
    const ref = rows.find((r) => r.impl === 'reference' && r.n === n);
    for (const label of ourLabels) {
      const ours = rows.find((r) => r.impl === label && r.n === n);
      if (!ours || !ref) continue;
      console.log(
        `ratio ${label}/reference at N=${n}: chain ADD+DEL ${(sum(ours) / sum(ref)).toFixed(2)}×, portmap ADD+DEL ${(psum(ours) / psum(ref)).toFixed(2)}×, chain CPU ${(cpu(ours) / cpu(ref)).toFixed(2)}×`,
      );
    }
  }
  for (const label of ourLabels) {
    const base = rows.find((r) => r.impl === label && r.n === populations[0]);
    for (const r of rows.filter((x) => x.impl === label && x !== base)) {
      if (!base) break;
      console.log(
        `${label} N=${r.n} vs N=${base.n}: chain ADD+DEL ${(sum(r) / sum(base)).toFixed(2)}×, portmap ADD+DEL ${(psum(r) / psum(base)).toFixed(2)}×`,
      );
    }
  }
  const refBase = rows.find((r) => r.impl === 'reference' && r.n === populations[0]);
  for (const r of rows.filter((x) => x.impl === 'reference' && x !== refBase)) {
    if (!refBase) break;
    console.log(
      `reference N=${r.n} vs N=${refBase.n}: chain ADD+DEL ${(sum(r) / sum(refBase)).toFixed(2)}×, portmap ADD+DEL ${(psum(r) / psum(refBase)).toFixed(2)}×`,
    );
  }
} finally {
  cleanup();
}
