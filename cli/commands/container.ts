/**
 * Docker-like container commands: run, start, stop, kill, rm, ps, logs, exec, inspect, port and
 * `container cleanup` (what a detached container's monitor runs when it exits).
 */

import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CtnetError, ErrorCode, formatHostPort } from '../../core/index.js';
import type { ContainerRecord, CreateRequest, PortRequest, RunnerContext } from '../../runner/index.js';
import * as r from '../../runner/index.js';
import { ago, eachName, errorReport, printJson, printTable, toolFailed } from '../output.js';
import { pullWithProgress } from './image.js';

const collect = (value: string, previous: string[]) => [...previous, value];

async function runner() {
  return { r, ctx: r.defaultContext() };
}

function statusText(rec: ContainerRecord): string {
  const s = rec.state;
  if (s.status === 'running') return `Up ${ago(s.startedAt)}`;
  if (s.status === 'creating') return 'Created';
  return `Exited (${s.exitCode ?? 0})${s.oomKilled ? ' OOMKilled' : ''} ${ago(s.finishedAt)} ago`;
}

export interface RunFlags {
  detach?: boolean;
  rm?: boolean;
  name?: string;
  env: string[];
  volume: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  entrypoint?: string;
  interactive?: boolean;
  tty?: boolean;
  network: string;
  publish: string[];
  publishAll?: boolean;
  expose: string[];
  memory?: string;
  cpus?: string;
  pidsLimit?: string;
  securityOpt: string[];
  preserveFds?: string;
  pull?: string;
}

/** Where `run` writes and what it runs with: the CLI's own process, or the agent's caller. */
export interface RunIo {
  r: typeof r;
  ctx: RunnerContext;
  /** The caller's working directory (a ./relative image directory is relative to it). */
  cwd: string;
  stdinIsTTY: boolean;
  write(stream: 'out' | 'err', text: string): void;
}

export type RunAction = (image: string, command: string[], f: RunFlags) => Promise<void>;

/** The `run` command's syntax (Docker's); the agent parses its callers' arguments with it too. */
export function defineRun(program: Command, action: RunAction): void {
  program
    .command('run')
    .description('create and start a container (Docker syntax)')
    .argument('<image>', '"default" (the host system, read-only), a directory, or an imported image')
    .argument('[command...]', 'command and arguments (default: sh)')
    .option('-d, --detach', 'run in the background and print the container id')
    .option('--rm', 'remove the container when it exits')
    .option('--name <name>', 'container name')
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable)', collect, [])
    .option('-v, --volume <host:ctr[:ro]>', 'bind mount (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user name or uid[:gid]')
    .option('--hostname <name>', 'container host name')
    .option('--entrypoint <cmd>', 'program to run before the command')
    .option('-i, --interactive', 'keep stdin attached')
    .option('-t, --tty', 'allocate a pseudo-TTY for the container')
    .option('--network <mode>', 'bridge | none | host | container:NAME | a network name', 'bridge')
    .option('-p, --publish <spec>', '[hostIP:][hostPort:]containerPort[/proto] (repeatable)', collect, [])
    .option('-P, --publish-all', 'publish every --expose port on a random host port')
    .option('--expose <port>', 'container port for -P (repeatable)', collect, [])
    .option('-m, --memory <bytes>', 'memory limit, e.g. 64m')
    .option('--cpus <n>', 'CPU limit, e.g. 0.5')
    .option('--pids-limit <n>', 'process limit')
    .option('--security-opt <opt>', 'seccomp=unconfined | seccomp=PROFILE.json | no-new-privileges (repeatable)', collect, [])
    .option('--preserve-fds <n>', "pass the caller's file descriptors 3 .. 3+N-1 to the container")
    .option('--pull <policy>', 'pull the image: missing | always | never (default: $CTNET_PULL, else missing)')
    .passThroughOptions()
    .action(action);
}

/**
 * Docker's exit codes for run and exec: 127 when the command is not found, 126 when it cannot be
 * run, 125 when ctnet itself failed (the error is written first); the container's status otherwise.
 */
export function toolFailureCode(err: unknown, r: RunIo['r'], write: RunIo['write'], env: NodeJS.ProcessEnv): number {
  const details = (err as { details?: unknown }).details;
  if (details === r.execNotFound || details === r.execFailed) {
    write('err', `ctnet: ${(err as Error).message}\n`);
    return details === r.execNotFound ? 127 : 126;
  }
  write('err', errorReport(err, env).text);
  return toolFailed;
}

/** The whole of `ctnet run` after parsing: the exit code, Docker's (every error is reported through io). */
export async function runCommand(image: string, command: string[], f: RunFlags, io: RunIo): Promise<number> {
  try {
    return await runParsed(image, command, f, io);
  } catch (err) {
    return toolFailureCode(err, io.r, io.write, io.ctx.env);
  }
}

const pullPolicies = ['missing', 'always', 'never'] as const;

function pullPolicy(text: string | undefined): (typeof pullPolicies)[number] {
  const policy = text || 'missing';
  if (!(pullPolicies as readonly string[]).includes(policy)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid pull policy "${policy}": use missing, always or never`);
  }
  return policy as (typeof pullPolicies)[number];
}

/** Whether `ref` names an image that is not here but could be pulled. */
function missingImage(r: RunIo['r'], ctx: RunnerContext, ref: string): boolean {
  try {
    r.resolveImage(ctx.paths, ref);
    return false;
  } catch (err) {
    return (err as { details?: unknown }).details === r.noSuchImage && r.looksLikeReference(ref);
  }
}

async function runParsed(image: string, command: string[], f: RunFlags, io: RunIo): Promise<number> {
  const { r, ctx } = io;
  const publish: PortRequest[] = f.publish.flatMap((p) => r.parsePublish(p));
  if (f.publishAll) publish.push(...f.expose.flatMap((e) => r.parseExpose(e)));
  const req: CreateRequest = {
    image: image.startsWith('./') || image.startsWith('../') ? resolve(io.cwd, image) : image,
    command,
    entrypoint: f.entrypoint,
    name: f.name,
    env: f.env,
    volumes: f.volume,
    workdir: f.workdir,
    user: f.user,
    hostname: f.hostname,
    network: f.network,
    publish,
    publishAll: !!f.publishAll,
    limits: {
      memoryBytes: f.memory ? r.parseMemory(f.memory) : undefined,
      cpus: f.cpus ? r.parseCpus(f.cpus) : undefined,
      pidsLimit: f.pidsLimit ? r.parsePidsLimit(f.pidsLimit) : undefined,
    },
    autoRemove: !!f.rm,
    interactive: !!f.interactive,
    tty: !!f.tty,
    security: r.parseSecurityOpts(f.securityOpt, io.cwd),
    preserveFds: f.preserveFds ? r.parsePreserveFds(f.preserveFds) : undefined,
  };
  const policy = pullPolicy(f.pull ?? ctx.env.CTNET_PULL);
  const pull =
    policy === 'always'
      ? r.looksLikeReference(req.image) && !r.isLocalImage(req.image)
      : policy === 'missing' && missingImage(r, ctx, req.image);
  if (pull) {
    // As `docker run`: an image that is nowhere here is pulled first (its progress on stderr).
    if (policy === 'missing') io.write('err', `Unable to find image '${image}' locally\n`);
    await pullWithProgress(r, ctx.paths, req.image, { write: (t) => io.write('err', t), terminal: io.stdinIsTTY }, ctx.env);
  }
  const { rec, exitCode } = await r.runContainer(ctx, req, !!f.detach);
  if (f.detach) {
    io.write('out', `${rec.config.id}\n`);
    return 0;
  }
  return exitCode ?? 0;
}

export function register(program: Command): void {
  program.enablePositionalOptions();

  defineRun(program, async (image, command, f) => {
    const { r, ctx } = await runner();
    process.exitCode = await runCommand(image, command, f, {
      r,
      ctx,
      cwd: process.cwd(),
      stdinIsTTY: !!process.stdin.isTTY,
      write: (stream, text) => void (stream === 'out' ? process.stdout : process.stderr).write(text),
    });
  });

  program
    .command('start')
    .description('start stopped containers (in the background)')
    .argument('<container...>')
    .action(async (refs: string[]) => {
      const { r, ctx } = await runner();
      await eachName(refs, async (ref) => void (await r.startExisting(ctx, ref)));
    });

  program
    .command('stop')
    .description('stop containers: SIGTERM, then SIGKILL after the timeout')
    .argument('<container...>')
    .option('-t, --time <seconds>', 'seconds to wait before killing', '10')
    .action(async (refs: string[], f: { time: string }) => {
      const { r, ctx } = await runner();
      await eachName(refs, async (ref) => void (await r.stopContainer(ctx, ref, Number(f.time))));
    });

  program
    .command('kill')
    .description('send a signal to containers (default SIGKILL)')
    .argument('<container...>')
    .option('-s, --signal <signal>', 'signal name or number', 'KILL')
    .action(async (refs: string[], f: { signal: string }) => {
      const { r, ctx } = await runner();
      const signal = r.parseSignal(f.signal);
      await eachName(refs, async (ref) => void (await r.killContainer(ctx, ref, signal)));
    });

  program
    .command('rm')
    .description('remove containers')
    .argument('<container...>')
    .option('-f, --force', 'kill a running container first')
    .action(async (refs: string[], f: { force?: boolean }) => {
      const { r, ctx } = await runner();
      await eachName(refs, async (ref) => void (await r.removeContainer(ctx, ref, !!f.force)));
    });

  program
    .command('ps')
    .description('list containers')
    .option('-a, --all', 'include stopped containers')
    .option('-q, --quiet', 'ids only')
    .option('--json', 'print JSON (the inspect view of each)')
    .action(async (f: { all?: boolean; quiet?: boolean; json?: boolean }) => {
      const { r, ctx } = await runner();
      const list = await r.listContainers(ctx, !!f.all);
      if (f.json) return printJson(list.map(r.inspectView));
      if (f.quiet) {
        for (const rec of list) process.stdout.write(`${rec.config.id.slice(0, 12)}\n`);
        return;
      }
      printTable(
        ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'],
        list.map((rec) => [
          rec.config.id.slice(0, 12),
          rec.config.image,
          JSON.stringify(rec.config.command.join(' ').slice(0, 20)),
          `${ago(rec.config.createdAt)} ago`,
          statusText(rec),
          r.portsText(rec),
          rec.config.name,
        ]),
      );
    });

  program
    .command('logs')
    .description("print a detached container's output")
    .argument('<container>')
    .option('-f, --follow', 'keep printing until the container stops')
    .action(async (ref: string, f: { follow?: boolean }) => {
      const { r, ctx } = await runner();
      await r.streamLogs(ctx, ref, !!f.follow, (b) => process.stdout.write(b));
    });

  program
    .command('exec')
    .description('run a command in a running container (its namespaces and cgroup)')
    .argument('<container>')
    .argument('<command...>')
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user[:group]>', 'user name or uid[:gid]')
    .option('-i, --interactive', 'keep stdin attached')
    .option('-t, --tty', 'use the attached terminal')
    .passThroughOptions()
    .action(
      async (ref: string, command: string[], f: { env: string[]; workdir?: string; user?: string; interactive?: boolean }) => {
        const { r, ctx } = await runner();
        try {
          process.exitCode = await r.execInContainer(ctx, ref, {
            command,
            env: f.env,
            workdir: f.workdir,
            user: f.user,
            interactive: !!f.interactive,
          });
        } catch (err) {
          process.exitCode = toolFailureCode(err, r, (_, text) => process.stderr.write(text), ctx.env);
        }
      },
    );

  program
    .command('inspect')
    .description('show containers as JSON: state, pid, exit code, OOM, network results, ports, limits')
    .argument('<container...>')
    .action(async (refs: string[]) => {
      const { r, ctx } = await runner();
      await r.reconcile(ctx);
      // Docker prints the containers it found (an empty list when none) and an error for each other name.
      const views: ReturnType<typeof r.inspectView>[] = [];
      await eachName(refs, async (ref) => void views.push(r.inspectView(r.findRecord(ctx.paths, ref))), false);
      printJson(views);
    });

  program
    .command('port')
    .description("list a container's published ports")
    .argument('<container>')
    .argument('[port]', 'PORT[/proto]')
    .action(async (ref: string, port: string | undefined) => {
      const { r, ctx } = await runner();
      await r.reconcile(ctx);
      const rec = r.findRecord(ctx.paths, ref);
      const target = rec.config.network.kind === 'container' ? r.findRecord(ctx.paths, rec.config.network.container) : rec;
      let ports = r.containerBindings(target);
      if (port) {
        const [num, proto = 'tcp'] = port.split('/');
        ports = ports.filter((p) => String(p.containerPort) === num && p.protocol === proto);
        if (ports.length === 0) {
          throw new CtnetError(ErrorCode.invalidConfig, `no public port '${num}/${proto}' published for ${ref}`);
        }
        for (const p of ports) process.stdout.write(`${formatHostPort(p.hostIP, p.hostPort)}\n`);
        return;
      }
      for (const p of ports)
        process.stdout.write(`${p.containerPort}/${p.protocol} -> ${formatHostPort(p.hostIP, p.hostPort)}\n`);
    });

  const container = program.command('container').description('container maintenance');
  container
    .command('check')
    .description("run CNI CHECK on a running container's network")
    .argument('<container>')
    .action(async (ref: string) => {
      const { r, ctx } = await runner();
      const network = await r.checkContainer(ctx, ref);
      process.stdout.write(network ? `${ref}: network ${network} ok\n` : `${ref}: no CNI network to check\n`);
    });
  container
    .command('cleanup')
    .description('release what an exited container holds (run by its monitor; safe to run by hand)')
    .argument('<id>')
    .action(async (id: string) => {
      const { r, ctx } = await runner();
      await r.finalize(ctx, id);
    });
}
