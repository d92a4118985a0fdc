/** `ctnet debug cni add|del|check|gc|status`: cnitool for any conflist and any plugins. */
import {
  type CniAttachment,
  CtnetError,
  CtnetErrorList,
  DefaultExecutor,
  ErrorCode,
  ExecExecutor,
  type Executor,
  sha256Hex,
} from '../../../core/index.js';
import { CniRuntime, ctnetPaths, foreignNetconfDirs, loadNetwork } from '../../../network/index.js';
import { builtinPlugins } from '../../../plugins/index.js';
import { printJson } from '../../output.js';

export interface DebugCniOptions {
  args?: string;
  cap: string[];
  ifname: string;
  containerid?: string;
  netconfDir?: string[];
  cniPath?: string;
  exec?: boolean;
  valid: string[];
}

export const cniCommands = ['add', 'del', 'check', 'gc', 'status'] as const;

/** Directories searched for a network by name: ctnet's own, then the usual CNI one (or NETCONFPATH). */
export function netconfDirs(given: string[] | undefined): string[] {
  if (given?.length) return given;
  return [ctnetPaths().networks, ...foreignNetconfDirs()];
}

export function cniPathOf(given: string | undefined): string[] {
  return (given ?? process.env.CNI_PATH ?? '/opt/cni/bin').split(':').filter(Boolean);
}

/** `--cap portMappings='[...]'` → { portMappings: [...] } */
export function parseCapabilityArgs(caps: string[]): Record<string, unknown> | undefined {
  if (caps.length === 0) return undefined;
  const out: Record<string, unknown> = {};
  for (const cap of caps) {
    const eq = cap.indexOf('=');
    if (eq <= 0) throw new CtnetError(ErrorCode.invalidConfig, `invalid --cap ${JSON.stringify(cap)}: expected NAME=JSON`);
    const name = cap.slice(0, eq);
    try {
      out[name] = JSON.parse(cap.slice(eq + 1));
    } catch (cause) {
      throw new CtnetError(ErrorCode.decode, `invalid --cap ${name}: ${(cause as Error).message}`, { cause });
    }
  }
  return out;
}

function parseAttachment(text: string, defaultIfname: string): CniAttachment {
  const [containerID, ifname] = text.split(':');
  if (!containerID)
    throw new CtnetError(ErrorCode.invalidConfig, `invalid --valid ${JSON.stringify(text)}: expected ID[:IFNAME]`);
  return { containerID, ifname: ifname || defaultIfname };
}

/** cnitool derives the container ID from the netns path; so do we, so repeated calls agree. */
export function defaultContainerId(netns: string): string {
  return `ctnet-${sha256Hex(netns).slice(0, 20)}`;
}

async function executorFor(forceExec: boolean | undefined): Promise<Executor> {
  if (forceExec) return new ExecExecutor();
  // Our plugins run in-process unless a different binary of that name is on CNI_PATH.
  return new DefaultExecutor(builtinPlugins);
}

export async function runDebugCni(command: string, network: string, netns: string | undefined, opts: DebugCniOptions) {
  if (!(cniCommands as readonly string[]).includes(command)) {
    throw new CtnetError(ErrorCode.invalidConfig, `unknown CNI command "${command}": use one of ${cniCommands.join(', ')}`);
  }
  const net = loadNetwork(network, netconfDirs(opts.netconfDir));
  const runtime = new CniRuntime(await executorFor(opts.exec), ctnetPaths().cniResults, cniPathOf(opts.cniPath));
  const needsNetns = command === 'add' || command === 'check';
  if (needsNetns && !netns) throw new CtnetError(ErrorCode.invalidEnv, `debug cni ${command} needs a NETNS path`);
  const rt = {
    containerId: opts.containerid ?? defaultContainerId(netns ?? ''),
    netns: netns ?? '',
    ifname: opts.ifname,
    args: opts.args,
    capabilityArgs: parseCapabilityArgs(opts.cap),
  };
  switch (command) {
    case 'add':
      try {
        printJson(await runtime.add(net, rt));
      } catch (err) {
        if (err instanceof CtnetError && !err.hint) {
          throw new CtnetError(err.code, err.message, {
            cause: err,
            details: err.details,
            hint: `plugins earlier in the chain may have left state: run \`ctnet debug cni del ${network} ${netns}\``,
          });
        }
        throw err;
      }
      return;
    case 'del':
      await runtime.del(net, rt);
      return;
    case 'check':
      await runtime.check(net, rt);
      return;
    case 'status':
      await runtime.status(net);
      process.stdout.write(`network ${net.list.name}: ready\n`);
      return;
    case 'gc': {
      // By default every attachment ctnet has a cached result for is still valid: GC then frees only
      // what no known attachment holds. --valid names the valid set explicitly instead.
      const valid = opts.valid.length
        ? opts.valid.map((v) => parseAttachment(v, opts.ifname))
        : runtime.cachedAttachments(net.list.name).map((c) => ({ containerID: c.containerId, ifname: c.ifName }));
      const outcome = await runtime.gc(net, valid);
      for (const d of outcome.deleted) process.stdout.write(`deleted stale attachment ${d.containerID}/${d.ifname}\n`);
      if (outcome.errors.length) throw new CtnetErrorList(`collect garbage on network "${net.list.name}"`, outcome.errors);
      return;
    }
  }
}
