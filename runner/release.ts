/**
 * Releasing a container: everything it holds (processes, network attachments, netns file, cgroup) undone from the
 * record, whatever point it got to; and the reconciliation every command runs first, which notices containers whose
 * CLI or processes died and releases them. Mounts need no release: they live only in the container's mount
 * namespace and vanish with its last process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CtnetError, ErrorCollector, log } from '../core/index.js';
import { deleteNetns } from '../netns/index.js';
import { releaseExtraAttachments as releaseCachedAttachments, syncHostsFiles, unnamedNetworks } from '../network/index.js';
import { destroyCgroup, killCgroup, oomKillCount } from './cgroups/index.js';
import { knownContainers } from './containers.js';
import type { RunnerContext } from './context.js';
import { networkFromText, portMappingsArg, retireNetns, runnerRuntime } from './network.js';
import {
  type ContainerRecord,
  type ContainerState,
  changeStatus,
  containerDir,
  isAlive,
  listRecords,
  loadRecord,
  removeRecord,
  saveRecord,
  withLock,
} from './state.js';
import { mark } from './timing.js';

/**
 * Releases everything the container holds, whatever point it got to; idempotent (each step
 * clears its record). Errors are collected, every step runs, the state is saved after each.
 */
export async function release(ctx: RunnerContext, rec: ContainerRecord, exitCode?: number): Promise<CtnetError[]> {
  const st = rec.state;
  const save = () => {
    if (existsSync(containerDir(ctx.paths, rec.config.id))) saveRecord(ctx.paths, rec);
  };
  const failures = new ErrorCollector();
  let killed = false;
  if (isAlive(st.pid, st.pidStart)) {
    killed = true;
    try {
      process.kill(st.pid as number, 'SIGKILL');
    } catch {
      /* it just went */
    }
  }
  if (st.cgroup) killed = killCgroup(st.cgroup) && killed;
  const namedNetwork = st.attachment?.network;
  const extras = await releaseExtraAttachments(ctx, rec);
  for (const e of extras.errors) failures.add(e);
  mark('del extras');
  if (st.attachment) {
    try {
      const executor = await ctx.executor();
      const net = networkFromText(st.attachment.conflist, `state of ${rec.config.id}`);
      let netns = st.netnsPath && existsSync(st.netnsPath) ? st.netnsPath : '';
      // Our own namespace, nothing of the container left running: let the kernel take the veth (retireNetns).
      if (netns && st.ownNetns && !extras.errors.length && (await retireNetns(netns, net.list.plugins))) netns = '';
      await runnerRuntime(executor, ctx.paths).delList(
        net,
        {
          containerId: rec.config.id,
          netns,
          ifname: st.attachment.ifname,
          capabilityArgs: { portMappings: portMappingsArg(st.attachment.portMappings) },
        },
        Object.keys(st.attachment.result).length ? st.attachment.result : undefined,
      );
      st.attachment = undefined;
      save();
    } catch (err) {
      failures.add(err);
    }
    mark('cni del');
  }
  if (st.netnsPath && st.ownNetns) {
    try {
      if (existsSync(st.netnsPath)) {
        // In-process (an unmount): a helper process for it cost ~5 ms of every teardown.
        await deleteNetns(st.netnsPath);
      }
      st.netnsPath = undefined;
      st.ownNetns = undefined;
      save();
    } catch (err) {
      failures.add(err, `delete network namespace ${st.netnsPath}`);
    }
  } else if (st.netnsPath) {
    st.netnsPath = undefined;
  }
  mark('netns del');
  if (st.cgroup) {
    st.oomKilled = st.oomKilled || oomKillCount(st.cgroup) > 0;
    destroyCgroup(st.cgroup);
    st.cgroup = undefined;
  }
  mark('cgroup del');
  changeStatus(rec, { to: 'exited', exitCode: exitCode ?? readExitFile(ctx, rec) ?? (killed ? 137 : 255) });
  if (failures.failed) st.error = failures.errors.map((e) => e.message).join('; ');
  save();
  if (namedNetwork || extras.count) await refreshPeerNames(ctx, extras.count ? undefined : namedNetwork);
  return failures.errors;
}

/**
 * DELs the attachments `network connect` added (cached like libcni's, not in the record), while
 * the namespace still exists, so stopping a container leaks none of them.
 */
async function releaseExtraAttachments(
  ctx: RunnerContext,
  rec: ContainerRecord,
): Promise<{ count: number; errors: CtnetError[] }> {
  const runtime = runnerRuntime(await ctx.executor(), ctx.paths);
  const count = runtime.cachedAttachments().filter((a) => a.containerId === rec.config.id).length;
  if (count === 0) return { count, errors: [] };
  const netns = rec.state.netnsPath && existsSync(rec.state.netnsPath) ? rec.state.netnsPath : '';
  return { count, errors: await releaseCachedAttachments(runtime, rec.config.id, netns) };
}

/**
 * Keeps /etc/hosts of containers sharing a user-defined network current (network/names.ts). A
 * failure costs names, never the container, so it is logged and swallowed.
 */
export async function refreshPeerNames(ctx: RunnerContext, network: string | undefined): Promise<void> {
  try {
    if (network === undefined || !unnamedNetworks.has(network)) syncHostsFiles(ctx.paths, knownContainers(ctx.paths));
  } catch (err) {
    log.warn({ err }, 'failed to update the hosts files of containers on shared networks');
  }
}

/** Where ctnet-init writes the container's exit code once it has reaped it. */
export function exitFilePath(ctx: RunnerContext, rec: ContainerRecord): string {
  return join(containerDir(ctx.paths, rec.config.id), 'exit');
}

export function readExitFile(ctx: RunnerContext, rec: ContainerRecord): number | undefined {
  try {
    const n = Number(readFileSync(exitFilePath(ctx, rec), 'utf8').trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** After the container's processes are gone: release, and remove it if it was run with --rm. */
export async function finalize(ctx: RunnerContext, id: string, exitCode?: number): Promise<ContainerRecord | undefined> {
  if (!loadRecord(ctx.paths, id)) return undefined;
  return withLock(ctx.paths, id, async () => {
    const rec = loadRecord(ctx.paths, id);
    if (!rec) return undefined;
    // Every caller saw a run end, but `start` may have begun the next one since (a stopped container's monitor
    // runs its cleanup ~100 ms after the exit): that run is not ours to release.
    if (isLive(rec.state)) return rec;
    if (rec.state.status !== 'exited' || rec.state.cgroup || rec.state.attachment || rec.state.netnsPath) {
      const errors = await release(ctx, rec, exitCode);
      // Nobody else hears of these (a monitor's exit command, a reconciliation): log them.
      if (errors.length)
        log.warn({ id: rec.config.id, errors: errors.map((e) => e.message) }, 'failed to release everything the container held');
    }
    if (rec.config.autoRemove) removeRecord(ctx.paths, rec);
    return rec;
  });
}

/** A run under way: its creating CLI or its init is still alive. */
function isLive(st: ContainerState): boolean {
  if (st.status === 'creating') return isAlive(st.owner?.pid, st.owner?.start);
  return st.status === 'running' && isAlive(st.pid, st.pidStart);
}

/**
 * Notices containers whose processes (or whose creating CLI) died without cleaning up, and
 * releases them. Run at the start of every command.
 */
export async function reconcile(ctx: RunnerContext): Promise<void> {
  for (const rec of listRecords(ctx.paths)) {
    const st = rec.state;
    const dead = st.status === 'exited' ? !!(st.cgroup || st.attachment || st.netnsPath) : !isLive(st);
    if (!dead) continue;
    try {
      const wasCreating = st.status === 'creating' && !st.pid;
      const after = await finalize(ctx, rec.config.id);
      // A run that died half-way never produced a container the user saw: leave nothing behind.
      if (after && wasCreating && loadRecord(ctx.paths, rec.config.id)) removeRecord(ctx.paths, after);
    } catch (err) {
      log.warn({ id: rec.config.id, err: String(err) }, 'failed to release a dead container');
    }
  }
}
