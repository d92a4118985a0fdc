/**
 * One long-lived process (run with the sandbox host namespace as its own, as the agent runs) that makes
 * many netlink calls at once and checks every reply against what it asked for. Started by
 * netlink-stress.test.ts; prints one JSON summary line.
 *
 * What runs concurrently, for `seconds`:
 * - churners: create a veth pair (host end a port of the bridge, peer eth0 in a container namespace), then
 *   delete the container end with deleteLinkOffThread (the delete whose kernel echo also reaches the peer's
 *   namespace);
 * - readers: a fresh socket per call (withNetlink) asks for the bridge, for lo, and lists links; each answer
 *   must describe exactly what was asked;
 * - idle readers: a raw request socket is made, left idle a moment (as a call preempted between making its
 *   socket and its first request on a loaded machine), then asked for the bridge by name.
 * argv: seconds, bridge name, container namespace paths…
 */
import { AttrWriter, netlinkStrays, RtnlSocket } from '../core/index.js';
import { deleteLinkOffThread, type LinkInfo, parseLink, randomVethName, withNetlink } from '../netns/index.js';
import * as c from '../netns/rtnl-codec.js';

const [secondsArg, bridgeArg, ...containers] = process.argv.slice(2);
if (!bridgeArg || containers.length === 0) throw new Error('usage: seconds bridge netns…');
const bridge: string = bridgeArg;
const deadline = Date.now() + Number(secondsArg) * 1000;

const counts = { calls: 0, wrong: 0, errors: 0, deletes: 0 };
const samples: string[] = [];

function wrong(what: string): void {
  counts.wrong++;
  if (samples.length < 5) samples.push(what);
}

function failed(what: string, err: unknown): void {
  counts.errors++;
  if (samples.length < 5) samples.push(`${what}: ${(err as Error).message}`);
}

const describe = (l: LinkInfo | undefined) => (l ? `${l.name}#${l.index} (${l.kind ?? 'no kind'})` : 'nothing');

const bridgeIndex = await withNetlink(undefined, async (nl) => {
  const br = await nl.ensureBridge(bridge);
  await nl.updateLink(br.index, { up: true });
  return br.index;
});

async function churn(ns: string): Promise<void> {
  while (Date.now() < deadline) {
    const host = randomVethName('vst');
    try {
      await withNetlink(undefined, (nl) => nl.createVeth(host, 'eth0', { peerNetnsPath: ns, master: bridgeIndex }));
      counts.calls++;
      if (!(await deleteLinkOffThread(ns, 'eth0'))) wrong(`deleteLinkOffThread(${ns}, eth0) found nothing to delete`);
      counts.calls++;
      counts.deletes++;
    } catch (err) {
      failed(`create/delete ${host}`, err);
      await withNetlink(undefined, (nl) => nl.deleteLink(host)).catch(() => undefined);
    }
  }
}

async function read(): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const [br, lo, all] = await withNetlink(undefined, async (nl) => [
        await nl.getLink(bridge),
        await nl.getLink('lo'),
        await nl.listLinks(),
      ]);
      counts.calls += 3;
      if (br?.name !== bridge || br.kind !== 'bridge' || br.index !== bridgeIndex) wrong(`getLink(${bridge}) → ${describe(br)}`);
      if (lo?.name !== 'lo' || lo.index !== 1) wrong(`getLink(lo) → ${describe(lo)}`);
      if (!all.some((l) => l.index === bridgeIndex && l.name === bridge)) wrong('listLinks() lacks the bridge');
    } catch (err) {
      failed('read', err);
    }
  }
}

/** GETLINK by name on a socket left idle first: every reply message must be that one link. */
async function idleRead(): Promise<void> {
  const body = new AttrWriter().raw(c.ifinfomsg()).string(c.IFLA_IFNAME, bridge).toBuffer();
  while (Date.now() < deadline) {
    const socket = new RtnlSocket();
    try {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      const replies = await socket.request(c.RTM_GETLINK, 0, body);
      counts.calls++;
      const links = replies.map(parseLink);
      if (links.length !== 1 || links[0]?.name !== bridge || links[0]?.kind !== 'bridge') {
        wrong(`idle GETLINK ${bridge} → [${links.map(describe).join(', ')}]`);
      }
    } catch (err) {
      failed('idle read', err);
    } finally {
      socket.close();
    }
  }
}

await Promise.all([...containers.map(churn), ...Array.from({ length: 3 }, read), ...Array.from({ length: 3 }, idleRead)]);
process.stdout.write(`${JSON.stringify({ ...counts, strays: netlinkStrays.count, samples })}\n`);
