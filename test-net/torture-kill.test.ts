/**
 * Torture: kill -9 at random points of ADD and DEL, as a hostile runtime would, then the runtime's cleanup (DEL of
 * the whole chain, portmap then bridge, repeated until it succeeds), then nothing may be left: no veth on the host
 * or in the container, no lease, no per-attachment rule or nft element, no port reservation.
 *
 * - As processes: the plugin itself is killed (bridge with host-local and ipMasq, and portmap; nftables backend).
 * - With the agent (`ctnet agent`): the agent is killed mid-call. The shim then answers CNI error 11 (try again
 *   later), or, when the agent died before taking the call, runs the plugin itself; either way the runtime's DEL
 *   cleans up (through a restarted agent or without one, chosen at random).
 *
 * The delay before the kill is drawn uniformly over the time a whole call takes here (measured first), so the
 * kills land anywhere from the start of the process to its last step. The seed is printed.
 */
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { newContainer } from './bridge-helpers.js';
import { cniBinDir, createSandbox, type PluginCall, type PluginOutcome, runPlugin, type Sandbox, tempDir } from './sandbox.js';
import {
  inventory,
  type KillableCall,
  leakCount,
  nothing,
  type Resident,
  seededRandom,
  startAgent,
  startPlugin,
} from './torture-helpers.js';

/** Trials per mode: a call through the agent takes ~15 ms, a process ~500 ms. */
const trialCount = { processes: 10, agent: 16 };
const bridgeBin = join(cniBinDir, 'bridge');
const portmapBin = join(cniBinDir, 'portmap');

interface Net {
  sb: Sandbox;
  dataDir: string;
  stateDir: string;
}

function bridgeConf(net: Net) {
  return {
    cniVersion: '1.1.0',
    name: 'torture',
    type: 'bridge',
    bridge: 'ttbr0',
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: 'nftables',
    ipam: { type: 'host-local', dataDir: net.dataDir, ranges: [[{ subnet: '10.123.0.0/24' }]] },
  };
}

function portmapConf(net: Net, prevResult: unknown) {
  return {
    cniVersion: '1.1.0',
    name: 'torture',
    type: 'portmap',
    capabilities: { portMappings: true },
    backend: 'nftables',
    stateDir: net.stateDir,
    runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] },
    ...(prevResult ? { prevResult } : {}),
  };
}

type Step = 'ADD bridge' | 'ADD portmap' | 'DEL portmap' | 'DEL bridge';

interface Kill {
  step: Step;
  afterMs: number;
  victim: (c: KillableCall) => Promise<void>;
}

/**
 * The runtime's chain, step by step: ADD bridge, ADD portmap, DEL portmap, DEL bridge. With `kill`, the step it
 * names is killed after its delay and the chain stops there; without, every step runs and is timed.
 */
async function chain(
  net: Net,
  call: PluginCall,
  kill?: Kill,
): Promise<{ killed?: PluginOutcome & { signal: NodeJS.Signals | null }; ms: Record<Step, number> }> {
  let result: Record<string, unknown> | undefined;
  const ms = {} as Record<Step, number>;
  const steps: [Step, string, () => unknown][] = [
    ['ADD bridge', bridgeBin, () => bridgeConf(net)],
    ['ADD portmap', portmapBin, () => portmapConf(net, result)],
    ['DEL portmap', portmapBin, () => portmapConf(net, result)],
    ['DEL bridge', bridgeBin, () => ({ ...bridgeConf(net), ...(result ? { prevResult: result } : {}) })],
  ];
  for (const [step, bin, conf] of steps) {
    const command = step.startsWith('ADD') ? 'ADD' : 'DEL';
    const started = Date.now();
    const c = startPlugin(net.sb.host, bin, { ...call, command }, conf());
    if (step === kill?.step) {
      await new Promise((r) => setTimeout(r, kill.afterMs));
      await kill.victim(c);
      return { killed: await c.done, ms };
    }
    const out = await c.done;
    ms[step] = Date.now() - started;
    if (out.exitCode !== 0) throw new Error(`${step} failed${kill ? ' before the kill' : ''}: ${out.stdout}${out.stderr}`);
    if (step === 'ADD bridge') result = out.json;
  }
  return { ms };
}

/** The runtime's cleanup after a failed call: DEL portmap, DEL bridge; each retried (a runtime retries DEL). */
async function runtimeDel(net: Net, call: PluginCall): Promise<void> {
  for (const [bin, conf] of [
    [portmapBin, portmapConf(net, undefined)],
    [bridgeBin, bridgeConf(net)],
  ] as const) {
    let last: PluginOutcome | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      last = await runPlugin(net.sb.host, bin, { ...call, command: 'DEL' }, conf);
      if (last.exitCode === 0) break;
    }
    if (last?.exitCode !== 0) throw new Error(`DEL ${bin} keeps failing: ${last?.stdout}${last?.stderr}`);
  }
}

/**
 * The whole chain once on a container of its own, timed step by step: the range of each step's kill delays. Also
 * warms a freshly started agent up, as one that has served before is.
 */
async function calibrate(net: Net, c: { id: string; netns: string }): Promise<Record<Step, number>> {
  return (await chain(net, { command: 'ADD', containerId: c.id, netns: c.netns, ifname: 'eth0' })).ms;
}

async function setup(t: ExecutionContext): Promise<Net> {
  const sb = await createSandbox(t);
  return { sb, dataDir: tempDir(t, 'tt-ipam'), stateDir: join(tempDir(t, 'tt-pm'), 'portmap') };
}

const steps: Step[] = ['ADD bridge', 'ADD portmap', 'DEL portmap', 'DEL bridge'];

async function trials(t: ExecutionContext, net: Net, agentMode: boolean): Promise<void> {
  const random = seededRandom(t, agentMode ? 'kill -9 of the agent' : 'kill -9 of the plugin processes');
  let agent: Resident | undefined = agentMode ? await startAgent(t, net.sb.host) : undefined;
  const warm = await newContainer(t, 'warm');
  await calibrate(net, warm);
  const stepMs = await calibrate(net, warm);
  t.log(`each step takes here (ms): ${JSON.stringify(stepMs)}; its kills land in 0 to that`);
  const outcomes: string[] = [];
  let leaks = 0;
  let cold = false;
  const trialsPerMode = agentMode ? trialCount.agent : trialCount.processes;
  for (let i = 0; i < trialsPerMode; i++) {
    const step = steps[Math.floor(random() * steps.length)] as Step;
    const afterMs = Math.floor(random() * stepMs[step]);
    const restart = random() < 0.5;
    const c = await newContainer(t, `k${i}`);
    const call: PluginCall = { command: 'ADD', containerId: c.id, netns: c.netns, ifname: 'eth0' };
    if (agentMode && !agent) {
      agent = await startAgent(t, net.sb.host);
      await calibrate(net, warm);
    } else if (cold) await calibrate(net, warm);
    cold = false;
    const victim = async (p: KillableCall) => {
      if (agent) {
        await agent.kill9();
        agent = undefined;
      } else p.kill9();
    };
    const killed = (await chain(net, call, { step, afterMs, victim })).killed as PluginOutcome & {
      signal: NodeJS.Signals | null;
    };
    if (agentMode) {
      // The shim either lost the agent after sending (error 11) or ran the plugin itself (a complete answer).
      const code = killed.json?.code;
      t.true(
        (killed.exitCode !== 0 && code === 11) || killed.exitCode === 0,
        `${step} after ${afterMs} ms: ${killed.exitCode} ${killed.stdout}${killed.stderr}`,
      );
      if (restart) {
        // Restarted before the runtime's DEL, which it then serves; warmed up before the next trial.
        agent = await startAgent(t, net.sb.host);
        cold = true;
      }
    }
    const outcome = killed.signal ? 'killed' : killed.exitCode === 0 ? 'completed' : `error ${String(killed.json?.code)}`;
    outcomes.push(`${step} +${afterMs}ms: ${outcome}`);
    await runtimeDel(net, call);
    const left = await inventory({
      host: net.sb.host,
      containerNs: c.ns,
      leaseDir: join(net.dataDir, 'torture'),
      portmapStateDir: net.stateDir,
    });
    leaks += leakCount(left);
    t.deepEqual(left, nothing, `trial ${i}: ${step} killed after ${afterMs} ms (${outcome})`);
  }
  t.log(`${trialsPerMode} faults: ${outcomes.join('; ')}`);
  t.log(`leaks: ${leaks}`);
}

test('kill -9 of plugin processes at random points of ADD and DEL: the runtime’s DEL leaves nothing', async (t) => {
  await trials(t, await setup(t), false);
});

test('kill -9 of the agent mid-call: error 11 (or the shim’s own run), and the runtime’s DEL leaves nothing', async (t) => {
  await trials(t, await setup(t), true);
});
