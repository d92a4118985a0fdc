/**
 * Starting a container: its cgroup, network namespace and CNI attachment, then its processes through the helper;
 * `ctnet run` (create, start, and in the foreground wait and clean up) and `ctnet start` of an existing one.
 *
 * Every step records what it made in the container state before going on, so release() can undo exactly that, from
 * any point, in any later process.
 */
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type CniDns, CtnetError, ErrorCode, log } from '../core/index.js';
import { cleanupFailed } from '../network/index.js';
import type { RunnerContext } from './context.js';
import { removeContainer } from './control.js';
import { allocate, type CreateRequest, createContainer } from './create.js';
import { type RunPlan, startContainerProcess, waitForExit } from './helper.js';
import { applyV1DeviceRules } from './isolation.js';
import { containerIfname, loadOrCreateNetwork, portMappingsArg, runnerRuntime } from './network.js';
import { cliCommand } from './paths.js';
import { runPlan, writeEtcFiles } from './plan.js';
import { exitFilePath, finalize, reconcile, refreshPeerNames, release } from './release.js';
import {
  type ContainerRecord,
  changeStatus,
  containerDir,
  findRecord,
  isAlive,
  loadRecord,
  parentPid,
  processStart,
  removeRecord,
  saveRecord,
  withLock,
} from './state.js';
import { flushTimings, mark } from './timing.js';

function cgroupName(id: string): string {
  return `ctnet-${id.slice(0, 12)}`;
}

/** Sets up namespaces, cgroup and network, then starts the processes. Releases everything on failure. */
export async function startContainer(
  ctx: RunnerContext,
  rec: ContainerRecord,
  opts: { detach: boolean; preserveFds?: number },
): Promise<{ rec: ContainerRecord; exited?: Promise<number> }> {
  const { paths } = ctx;
  const dir = containerDir(paths, rec.config.id);
  const save = () => saveRecord(paths, rec);
  const st = rec.state;
  changeStatus(rec, { to: 'creating' });
  save();
  // The code of an earlier run (ctnet start of an exited container) must not pass for this run's.
  rmSync(exitFilePath(ctx, rec), { force: true });
  try {
    // Recorded before it exists: a crash half-way through making it still leaves its paths.
    st.cgroup = ctx.cgroups.describe(ctx.cgroupParent, cgroupName(rec.config.id));
    save();
    ctx.cgroups.create(ctx.cgroupParent, cgroupName(rec.config.id), rec.config.limits);
    if (st.cgroup.devices?.kind === 'v1') applyV1DeviceRules(st.cgroup.devices.dir);
    mark('cgroup');
    const net = rec.config.network;
    let netnsCreate: string | undefined;
    if (net.kind === 'none' || net.kind === 'cni') {
      // The helper makes the namespace (one process less than a separate step); recorded first,
      // so a crash at any point still knows what to remove.
      mkdirSync(paths.netns, { recursive: true });
      netnsCreate = join(paths.netns, rec.config.id);
      st.netnsPath = netnsCreate;
      st.ownNetns = true;
    } else if (net.kind === 'container') {
      const target = findRecord(paths, net.container);
      if (target.state.status !== 'running' || !isAlive(target.state.pid, target.state.pidStart)) {
        throw new CtnetError(ErrorCode.invalidConfig, `cannot join the network of container ${net.container}: it is not running`);
      }
      st.netnsPath = target.state.netnsPath ?? `/proc/${target.state.pid}/ns/net`;
      st.ownNetns = false;
    }
    let attach: (() => Promise<void>) | undefined;
    if (net.kind === 'cni') {
      const network = await loadOrCreateNetwork(paths, net.network);
      st.ports = await allocate(ctx, rec);
      ctx.preload(network.list.plugins.map((p) => p.type));
      attach = async () => {
        mark('netns');
        const executor = await ctx.executor();
        // Recorded before ADD: a crash in the middle still leaves enough to DEL.
        st.attachment = {
          network: net.network,
          ifname: containerIfname,
          conflist: network.raw,
          result: {},
          portMappings: st.ports,
        };
        save();
        try {
          st.attachment.result = await runnerRuntime(executor, paths).addList(
            network,
            {
              containerId: rec.config.id,
              netns: netnsCreate ?? '',
              ifname: containerIfname,
              capabilityArgs: { portMappings: portMappingsArg(st.ports) },
            },
            { undo: true },
          );
        } catch (err) {
          // addList already ran DEL over the list; only a failed DEL needs another one later.
          if (!cleanupFailed(err)) st.attachment = undefined;
          save();
          throw err;
        }
        save();
        writeEtcFiles(dir, rec, st.attachment.result.dns as CniDns | undefined);
        mark('network');
      };
    }
    save();
    writeEtcFiles(dir, rec, undefined);
    const plan: RunPlan = {
      ...runPlan(ctx, rec),
      netns: netnsCreate ? undefined : st.netnsPath,
      netnsCreate,
      // Without CNI nothing needs the namespace after the workload: the monitor removes it.
      netnsRemoveOnExit: net.kind === 'none',
      preserveFds: opts.preserveFds,
    };
    const logFd = opts.detach ? openSync(join(dir, 'log'), 'a') : undefined;
    let started: Awaited<ReturnType<typeof startContainerProcess>>;
    try {
      started = await startContainerProcess(
        opts.detach ? { ...plan, exitCommand: [...cliCommand(), 'container', 'cleanup', rec.config.id] } : plan,
        opts.detach
          ? { stdin: 'ignore', out: logFd ?? 'ignore', err: logFd ?? 'ignore' }
          : {
              stdin: rec.config.interactive ? (ctx.stdio?.in ?? 'inherit') : 'ignore',
              out: ctx.stdio?.out ?? 'inherit',
              err: ctx.stdio?.err ?? 'inherit',
            },
        opts.detach || !!ctx.ownSession,
        attach,
      );
    } finally {
      if (logFd !== undefined) closeSync(logFd);
    }
    changeStatus(rec, { to: 'running', pid: started.pid, pidStart: processStart(started.pid) });
    save();
    mark('start');
    if (net.kind === 'cni') await refreshPeerNames(ctx, net.network);
    if (opts.detach) {
      started.monitor.unref();
      return { rec };
    }
    return { rec, exited: waitForExit(started.monitor) };
  } catch (err) {
    st.error = err instanceof Error ? err.message : String(err);
    await release(ctx, rec);
    throw err;
  }
}

type Started = Awaited<ReturnType<typeof startContainer>>;

class SetupDeadlineError extends CtnetError {}

/**
 * Waits for `starting` for at most ctx.setupDeadlineMs. Past it the caller gets an error at once (a setup stuck on
 * a lock held elsewhere or a hung plugin keeps no caller of the agent waiting), and the start is undone when it
 * settles: a container that started after all is removed as `rm -f` removes it, a failed one loses its record.
 */
async function startWithinDeadline(ctx: RunnerContext, rec: ContainerRecord, starting: Promise<Started>): Promise<Started> {
  const ms = ctx.setupDeadlineMs;
  if (!ms) return starting;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new SetupDeadlineError(
            ErrorCode.tryAgainLater,
            `failed to start container ${rec.config.name}: it was not running after ${ms / 1000} s`,
            { hint: 'whatever it had set up is removed when its setup ends; see the agent log for the step it waited on' },
          ),
        ),
      ms,
    );
  });
  try {
    return await Promise.race([starting, deadline]);
  } catch (err) {
    if (err instanceof SetupDeadlineError) {
      log.warn({ container: rec.config.id, deadlineMs: ms }, 'run past its setup deadline: undoing it once its start settles');
      starting
        .then(
          () => removeContainer(ctx, rec.config.id, true),
          () => removeRecord(ctx.paths, rec),
        )
        .then(
          () => log.info({ container: rec.config.id }, 'late run undone'),
          (e: unknown) => log.warn({ container: rec.config.id, err: String(e) }, 'failed to undo a late run'),
        );
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The whole of `ctnet run`: create, start, and in the foreground wait and clean up. */
export async function runContainer(
  ctx: RunnerContext,
  req: CreateRequest,
  detach: boolean,
): Promise<{ rec: ContainerRecord; exitCode?: number }> {
  mark('startup');
  await reconcile(ctx);
  const rec = createContainer(ctx, req);
  mark('create');
  let started: Started;
  try {
    started = await startWithinDeadline(ctx, rec, startContainer(ctx, rec, { detach, preserveFds: req.preserveFds }));
  } catch (err) {
    // Past the deadline the start is still under way; startWithinDeadline undoes it once it settles.
    if (!(err instanceof SetupDeadlineError)) removeRecord(ctx.paths, rec);
    throw err;
  }
  if (!started.exited) {
    flushTimings();
    return { rec };
  }
  // With -t the monitor (init's parent) owns the pty: a resize goes to it, which copies the size.
  const monitor = rec.config.tty && rec.state.pid ? parentPid(rec.state.pid) : undefined;
  const stopForwarding = ctx.signals((sig) => {
    try {
      const target = sig === 'SIGWINCH' && monitor ? monitor : rec.state.pid;
      if (target) process.kill(target, sig);
    } catch {
      /* it has just exited */
    }
  });
  const exitCode = await started.exited;
  mark('workload');
  stopForwarding();
  const after = await finalize(ctx, rec.config.id, exitCode);
  mark('teardown');
  flushTimings();
  return { rec: after ?? rec, exitCode: after?.state.oomKilled ? 137 : exitCode };
}

export async function startExisting(ctx: RunnerContext, ref: string): Promise<ContainerRecord> {
  await reconcile(ctx);
  const found = findRecord(ctx.paths, ref);
  return withLock(ctx.paths, found.config.id, async () => {
    const rec = loadRecord(ctx.paths, found.config.id) ?? found;
    if (rec.state.status === 'running') return rec;
    if (rec.state.status === 'creating') throw new CtnetError(ErrorCode.tryAgainLater, `container ${ref} is being created`);
    await startContainer(ctx, rec, { detach: true });
    return rec;
  });
}
