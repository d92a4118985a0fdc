/**
 * Torture: the IPAM data dir full (ENOSPC, a small tmpfs), read-only (EROFS, a read-only bind mount), and its
 * files truncated or filled with garbage, with the plugins as processes and through the agent.
 *
 * The mounts exist only in a mount namespace of the test's own: a holder process started with `unshare -m` (slave
 * propagation: the host's netns mounts reach it, its own mounts stay in it), whose
 * namespace every plugin call (and the agent) enters with `nsenter --mount`. The machine's mounts never change.
 *
 * What must hold: a failed call gives a clean CNI error (exit 1, error JSON with a code and a message), leaves no
 * lease half-written and no host state (veth) behind, and loses no lease of another container; once the disk is
 * back, calls work again. A damaged lease file or cursor is never a crash and never makes an address be handed out
 * twice.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { run } from '../core/index.js';
import { newContainer } from './bridge-helpers.js';
import { cniBinDir, createSandbox, type PluginCall, type Sandbox, tempDir } from './sandbox.js';
import { inventory, seededRandom, startAgent, startPlugin } from './torture-helpers.js';

const bridgeBin = join(cniBinDir, 'bridge');
const network = 'tdisk';

interface World {
  sb: Sandbox;
  dataDir: string;
  leaseDir: string;
  /** The holder's mount namespace, entered by every call. */
  mountNs: string;
  /** Runs a command in the holder's mount namespace. */
  inMounts(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** A process sitting in a private mount namespace until the teardown kills it by PID. */
async function mountHolder(t: ExecutionContext): Promise<string> {
  const holder: ChildProcess = spawn('unshare', ['-m', '--propagation', 'slave', 'sleep', '600'], { stdio: 'ignore' });
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  const pid = holder.pid as number;
  const own = readlinkSafe('/proc/self/ns/mnt');
  for (let i = 0; i < 100 && readlinkSafe(`/proc/${pid}/ns/mnt`) === own; i++) await new Promise((r) => setTimeout(r, 20));
  return `/proc/${pid}/ns/mnt`;
}

function readlinkSafe(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

async function world(t: ExecutionContext): Promise<World> {
  const sb = await createSandbox(t);
  const dataDir = tempDir(t, 'td-ipam');
  const mountNs = await mountHolder(t);
  const inMounts = (cmd: string, args: string[]) => run('nsenter', [`--mount=${mountNs}`, cmd, ...args], { allowFailure: true });
  return { sb, dataDir, leaseDir: join(dataDir, network), mountNs, inMounts };
}

function conf(w: World) {
  return {
    cniVersion: '1.1.0',
    name: network,
    type: 'bridge',
    bridge: 'tdbr0',
    isGateway: true,
    ipam: { type: 'host-local', dataDir: w.dataDir, ranges: [[{ subnet: '10.124.0.0/28' }]] },
  };
}

async function call(w: World, command: 'ADD' | 'DEL', c: { id: string; netns: string }) {
  const pc: PluginCall = { command, containerId: c.id, netns: c.netns, ifname: 'eth0' };
  return startPlugin(w.sb.host, bridgeBin, pc, conf(w), ['nsenter', `--mount=${w.mountNs}`]).done;
}

/** The lease files as the holder's mount namespace sees them: name → content. */
async function leases(w: World): Promise<Record<string, string>> {
  const r = await w.inMounts('sh', [
    '-c',
    `cd ${w.leaseDir} && for f in *.*.*.*; do [ -f "$f" ] && printf '%s=%s\\n' "$f" "$(cat "$f" | tr -d '\\r\\n')"; done`,
  ]);
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [name, ...rest] = line.split('=');
    out[name as string] = rest.join('=');
  }
  return out;
}

function assertCleanError(
  t: ExecutionContext,
  r: { exitCode: number; stdout: string; stderr: string; json?: Record<string, unknown> },
  what: string,
) {
  t.is(r.exitCode, 1, `${what}: ${r.stdout}${r.stderr}`);
  t.is(typeof r.json?.code, 'number', `${what}: CNI error JSON: ${r.stdout}`);
  t.is(typeof r.json?.msg, 'string', `${what}: ${r.stdout}`);
  t.notRegex(r.stderr, /at .*\.(ts|js):\d+|Uncaught|TypeError|RangeError/, `${what}: no crash on stderr`);
}

async function disks(t: ExecutionContext, agentMode: boolean) {
  const w = await world(t);
  mkdirSync(w.dataDir, { recursive: true });
  // A 1 MiB tmpfs over the data dir, in the holder's namespace only.
  const m = await w.inMounts('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tdisk', w.dataDir]);
  t.is(m.code, 0, m.stderr);
  if (agentMode) await startAgent(t, w.sb.host, { wrap: ['nsenter', `--mount=${w.mountNs}`] });

  const a = await newContainer(t, 'a');
  const addA = await call(w, 'ADD', a);
  t.is(addA.exitCode, 0, addA.stdout + addA.stderr);
  const before = await leases(w);
  t.is(Object.keys(before).length, 1);

  // ENOSPC: fill the tmpfs, then ADD.
  await w.inMounts('sh', ['-c', `dd if=/dev/zero of=${w.dataDir}/filler bs=4k 2>/dev/null; sync`]);
  const b = await newContainer(t, 'b');
  const full = await call(w, 'ADD', b);
  assertCleanError(t, full, 'ADD on a full disk');
  t.regex(String(full.json?.msg), /ENOSPC|no space/i);
  t.log(`full: code ${String(full.json?.code)}: ${String(full.json?.msg)}`);
  t.deepEqual(await leases(w), before, 'no lease lost, none half-written');
  t.deepEqual(
    (await inventory({ host: w.sb.host, containerNs: b.ns, leaseDir: '/nonexistent' })).hostVeths.length,
    1,
    'only a’s veth on the host',
  );
  // The runtime's DEL of the failed ADD works on a full disk and leaves a's lease alone.
  const delB = await call(w, 'DEL', b);
  t.is(delB.exitCode, 0, delB.stdout + delB.stderr);
  t.deepEqual(await leases(w), before);

  // EROFS: the data dir read-only.
  await w.inMounts('rm', ['-f', `${w.dataDir}/filler`]);
  const ro = await w.inMounts('sh', ['-c', `mount --bind ${w.dataDir} ${w.dataDir} && mount -o remount,ro,bind ${w.dataDir}`]);
  t.is(ro.code, 0, ro.stderr);
  const rofs = await call(w, 'ADD', b);
  assertCleanError(t, rofs, 'ADD on a read-only disk');
  t.regex(String(rofs.json?.msg), /EROFS|read-only/i);
  t.log(`read-only: code ${String(rofs.json?.code)}: ${String(rofs.json?.msg)}`);
  const delA = await call(w, 'DEL', a);
  t.not(delA.exitCode, 0, 'DEL cannot release a lease on a read-only disk');
  assertCleanError(t, delA, 'DEL on a read-only disk');
  t.deepEqual(await leases(w), before, 'the lease is still there, whole');
  t.deepEqual(
    (await inventory({ host: w.sb.host, containerNs: b.ns, leaseDir: '/nonexistent' })).containerLinks,
    [],
    'b got nothing',
  );

  // Writable again: b gets an address other than a's; a's DEL releases a's lease.
  await w.inMounts('umount', [w.dataDir]);
  const addB = await call(w, 'ADD', b);
  t.is(addB.exitCode, 0, addB.stdout + addB.stderr);
  const ipB = firstIp(addB.json);
  t.false(Object.keys(before).includes(ipB), 'b does not get a’s address');
  t.is((await call(w, 'DEL', a)).exitCode, 0);
  t.is((await call(w, 'DEL', b)).exitCode, 0);
  t.deepEqual(await leases(w), {});
}

test('IPAM data dir full (ENOSPC) or read-only (EROFS), plugins as processes: clean errors, no lease lost or half-written', async (t) => {
  await disks(t, false);
});

test('IPAM data dir full (ENOSPC) or read-only (EROFS), through the agent: clean errors, no lease lost or half-written', async (t) => {
  await disks(t, true);
});

/** The first address of an ADD result, without its prefix length ('' when there is none). */
function firstIp(json: Record<string, unknown> | undefined): string {
  const ips = (json?.ips ?? []) as { address: string }[];
  return (ips[0]?.address ?? '').split('/')[0] as string;
}

/** Damage for a file: truncated to a random length, or random bytes, or text that looks almost right. */
function damage(random: () => number, original: string): { how: string; bytes: Buffer } {
  const kind = Math.floor(random() * 4);
  if (kind === 0) return { how: 'emptied', bytes: Buffer.alloc(0) };
  if (kind === 1) {
    const n = Math.floor(random() * original.length);
    return { how: `truncated to ${n} bytes`, bytes: Buffer.from(original).subarray(0, n) };
  }
  if (kind === 2) {
    const bytes = Buffer.alloc(1 + Math.floor(random() * 300));
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
    return { how: `${bytes.length} random bytes`, bytes };
  }
  return { how: 'plausible garbage', bytes: Buffer.from(`10.124.0.${Math.floor(random() * 300)}\r\n../../etc\0\n`) };
}

async function garbage(t: ExecutionContext, agentMode: boolean) {
  const random = seededRandom(t, `damaged IPAM files${agentMode ? ' (agent)' : ''}`);
  const sb = await createSandbox(t);
  const dataDir = tempDir(t, 'tg-ipam');
  const leaseDir = join(dataDir, network);
  const w = { sb, dataDir } as World;
  if (agentMode) await startAgent(t, sb.host);
  const callPlain = async (command: 'ADD' | 'DEL', c: { id: string; netns: string }) =>
    startPlugin(sb.host, bridgeBin, { command, containerId: c.id, netns: c.netns, ifname: 'eth0' }, conf(w)).done;

  const trials = 6;
  const log: string[] = [];
  for (let i = 0; i < trials; i++) {
    const a = await newContainer(t, `ga${i}`);
    const addA = await callPlain('ADD', a);
    t.is(addA.exitCode, 0, addA.stdout + addA.stderr);
    const ipA = firstIp(addA.json);
    // Damage a's lease, a cursor, or the owner index.
    const files = readdirSync(leaseDir).filter((f) => f !== 'lock');
    const target = files[Math.floor(random() * files.length)] as string;
    const original = readFileSync(join(leaseDir, target), 'utf8');
    const d = damage(random, original);
    writeFileSync(join(leaseDir, target), d.bytes);
    log.push(`${target} ${d.how}`);

    // Other containers come: none may get a's address while a's lease file exists, and none may crash.
    const others: { id: string; netns: string }[] = [];
    for (let j = 0; j < 3; j++) {
      const c = await newContainer(t, `gb${i}${j}`);
      const r = await callPlain('ADD', c);
      t.is(r.exitCode, 0, `after ${target} ${d.how}: ${r.stdout}${r.stderr}`);
      const ip = firstIp(r.json);
      t.not(ip, ipA, `after ${target} ${d.how}: ${ip} handed out twice`);
      others.push(c);
    }
    for (const c of others) t.is((await callPlain('DEL', c)).exitCode, 0);
    // a's DEL: whatever its lease file says now, no crash; a lease whose owner cannot be read stays (as the reference).
    const delA = await callPlain('DEL', a);
    t.is(delA.exitCode, 0, `DEL after ${target} ${d.how}: ${delA.stdout}${delA.stderr}`);
    // Every DEL released its lease; only a lease whose owner was damaged may stay (nobody can claim it), and goes
    // before the next trial.
    const owners = new Set([a, ...others].map((c) => `${c.id}\r\neth0`));
    for (const f of readdirSync(leaseDir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))) {
      const owner = readFileSync(join(leaseDir, f), 'utf8');
      t.false(owners.has(owner), `lease ${f} of ${owner} left after its DEL`);
      rmSync(join(leaseDir, f));
    }
  }
  t.log(`${trials} damaged files: ${log.join('; ')}`);
}

test('lease files, cursors and the owner index damaged, plugins as processes: no crash, no address handed out twice', async (t) => {
  await garbage(t, false);
});

test('lease files, cursors and the owner index damaged, through the agent: no crash, no address handed out twice', async (t) => {
  await garbage(t, true);
});
