/**
 * Torture: a storm of concurrent calls through the agent on a machine loaded by CPU hogs (bounded in time, killed by
 * PID). 50 ADDs at once on one network, then 50 more ADDs at once with the 50 DELs of the first ones; every call
 * must succeed (error 11, "try again later", is retried as a runtime does), no address may be held twice, and after
 * the last DELs nothing is left. Calls that interfered inside
 * the agent (a netlink answer taken by the wrong call) failed 1-2 ADDs of such a storm with "a veth link of that
 * name exists".
 */
import { join } from 'node:path';
import test from 'ava';
import { newContainer } from './bridge-helpers.js';
import { startCpuHogs } from './load.js';
import { cniBinDir, createSandbox, type PluginCall, tempDir } from './sandbox.js';
import { inventory, nothing, startAgent, startPlugin } from './torture-helpers.js';

const perWave = 50;
const bridgeBin = join(cniBinDir, 'bridge');

test('a storm of 50 ADDs, then 50 ADDs with 50 DELs, through the agent on a loaded machine: every call succeeds, no address twice, nothing left', async (t) => {
  const sb = await createSandbox(t);
  const dataDir = tempDir(t, 'ts-ipam');
  await startAgent(t, sb.host);
  const conf = {
    cniVersion: '1.1.0',
    name: 'storm',
    type: 'bridge',
    bridge: 'rcbr0',
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: 'nftables',
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.126.0.0/24' }]] },
  };
  const containers = [];
  for (let i = 0; i < 2 * perWave; i++) containers.push(await newContainer(t, `s${i}`));
  const once = (command: 'ADD' | 'DEL', c: { id: string; netns: string }) => {
    const pc: PluginCall = { command, containerId: c.id, netns: c.netns, ifname: 'eth0' };
    return startPlugin(sb.host, bridgeBin, pc, conf).done;
  };
  // Error 11 (try again later: the agent gave up on a call, e.g. its watchdog under this load) is retried as a runtime
  // does: DEL, then the call again. Any other failure counts.
  let retried = 0;
  const call = async (command: 'ADD' | 'DEL', c: { id: string; netns: string }) => {
    for (let attempt = 1; ; attempt++) {
      const r = await once(command, c);
      if (r.exitCode === 0 || r.json?.code !== 11 || attempt === 3) return r;
      retried++;
      if (command === 'ADD') await once('DEL', c);
    }
  };
  const first = containers.slice(0, perWave);
  const second = containers.slice(perWave);
  startCpuHogs(t, 120);

  const failures: string[] = [];
  const addresses = new Map<string, string>();
  const record = (c: { id: string }, r: Awaited<ReturnType<typeof call>>, what: string) => {
    if (r.exitCode !== 0) failures.push(`${what} ${c.id}: ${r.stdout}${r.stderr}`);
    const ip = ((r.json?.ips ?? []) as { address: string }[])[0]?.address;
    if (what === 'ADD' && ip) {
      const holder = addresses.get(ip);
      if (holder) failures.push(`${ip} handed to ${c.id} while ${holder} holds it`);
      addresses.set(ip, c.id);
    }
  };
  const wave1 = await Promise.all(first.map((c) => call('ADD', c)));
  for (const [i, c] of first.entries()) record(c, wave1[i] as Awaited<ReturnType<typeof call>>, 'ADD');
  // The storm: the second wave's ADDs and the first wave's DELs at once. A DEL's address may be handed out again
  // only once that DEL is done, so the first wave's addresses are dropped from the map before the second is read.
  const [adds, dels] = await Promise.all([
    Promise.all(second.map((c) => call('ADD', c))),
    Promise.all(first.map((c) => call('DEL', c))),
  ]);
  for (const [i, c] of first.entries()) record(c, dels[i] as Awaited<ReturnType<typeof call>>, 'DEL');
  for (const [ip, id] of [...addresses]) if (first.some((c) => c.id === id)) addresses.delete(ip);
  for (const [i, c] of second.entries()) record(c, adds[i] as Awaited<ReturnType<typeof call>>, 'ADD');
  t.log(
    `${4 * perWave} concurrent calls through the agent with CPU hogs: ${failures.length} failures, ${retried} retried after error 11`,
  );
  t.deepEqual(failures, []);
  t.is(addresses.size, perWave, 'every container of the second wave has an address of its own');

  const last = await Promise.all(second.map((c) => call('DEL', c)));
  t.deepEqual(
    last.filter((r) => r.exitCode !== 0).map((r) => r.stdout),
    [],
  );
  const left = await inventory({ host: sb.host, leaseDir: join(dataDir, 'storm') });
  t.deepEqual(left, nothing);
});
