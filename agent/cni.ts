/**
 * CNI calls in the agent: the plugins run already loaded, each call with a deadline, calls for one
 * attachment one after another.
 *
 * - **Deadline.** A call that has not finished after `deadlineMs` is answered with CNI error 11 ("try
 *   again later"), as a runtime's own timeout would end a plugin process. An ADD that ends after its
 *   answer is undone with a DEL of the same attachment once it has settled, so nothing it made stays
 *   behind a failure the runtime has already seen.
 * - **One attachment at a time.** Calls for the same container, interface and network wait for each
 *   other, including an abandoned ADD and its undoing: the runtime's DEL and a retried ADD never run
 *   beside work the agent still does for that attachment. (Runtimes never overlap calls for one
 *   attachment; waiting costs them nothing.)
 */
import { DefaultExecutor, ErrorCode, handle, log, type PluginRegistry } from '../core/index.js';
import type { Caller } from './acceptor.js';
import type { CniRequest } from './protocol.js';

export interface CniOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export type CniAnswer = { declined: string } | CniOutcome;

export interface CniService {
  serve(req: CniRequest, caller: Caller): Promise<CniAnswer>;
  /** Resolves when every call, abandoned ones and their undoing included, has settled. */
  idle(): Promise<void>;
}

/** Why a caller's CNI call is not served here (the shim then runs the plugin itself), or undefined. */
export function cniDeclineReason(caller: Caller, req: CniRequest): string | undefined {
  if (caller.uid !== 0) return `caller uid ${caller.uid} is not root`;
  // Paths in the call (CNI_NETNS, dataDir…) must mean the same to both processes.
  if (!caller.sameMount) return 'caller is in another mount namespace';
  if (!caller.sameRoot) return 'caller has another root directory';
  const netns = req.env.CNI_NETNS;
  if (netns && !netns.startsWith('/')) return 'CNI_NETNS is a relative path';
  return undefined;
}

function errorJson(code: number, msg: string, details: string): string {
  return `${JSON.stringify({ cniVersion: '1.1.0', code, msg, details })}\n`;
}

/** The network name of a configuration, best effort: it only narrows which calls wait for each other. */
function networkName(config: string): string {
  try {
    const name = (JSON.parse(config) as { name?: unknown }).name;
    return typeof name === 'string' ? name : '';
  } catch {
    return '';
  }
}

export function cniService(registry: PluginRegistry, deadlineMs: number): CniService {
  const executor = new DefaultExecutor(registry);
  /** Per attachment: the end of the last call queued for it. */
  const queues = new Map<string, Promise<void>>();
  const unsettled = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    unsettled.add(p);
    const done = () => unsettled.delete(p);
    p.then(done, done);
    return p;
  };

  /** Runs `fn` after the calls queued before it for `key`; `fn` says when the attachment is free again. */
  const inTurn = (key: string, fn: () => Promise<void>): void => {
    const before = queues.get(key) ?? Promise.resolve();
    const mine = before.then(fn, fn);
    queues.set(key, mine);
    void mine.finally(() => {
      if (queues.get(key) === mine) queues.delete(key);
    });
  };

  const run = async (req: CniRequest): Promise<CniOutcome> => {
    const plugin = registry[req.plugin];
    if (!plugin) throw new Error(`no plugin ${req.plugin}`);
    const outcome = await handle(await plugin(), req.env, req.config, executor);
    return { exitCode: outcome.exitCode, stdout: outcome.stdout, stderr: outcome.stderr ?? '' };
  };

  /** Removes what an abandoned ADD made: a DEL of the same attachment, with its result when it had one. */
  const undo = async (req: CniRequest, add: CniOutcome | undefined): Promise<void> => {
    let config = req.config;
    if (add?.exitCode === 0) {
      try {
        config = JSON.stringify({ ...(JSON.parse(req.config) as object), prevResult: JSON.parse(add.stdout) });
      } catch {
        /* DEL without prevResult removes what it can find */
      }
    }
    const del = await run({ ...req, env: { ...req.env, CNI_COMMAND: 'DEL' }, config });
    const fields = { type: req.plugin, containerId: req.env.CNI_CONTAINERID, exitCode: del.exitCode };
    if (del.exitCode === 0) log.info(fields, 'CNI call past its deadline undone');
    else log.error({ ...fields, stdout: del.stdout }, 'failed to undo a CNI call past its deadline');
  };

  const serve = (req: CniRequest): Promise<CniOutcome> =>
    new Promise((answer) => {
      const command = req.env.CNI_COMMAND ?? '';
      const key = [req.env.CNI_CONTAINERID, req.env.CNI_IFNAME, networkName(req.config)].join('\0');
      let answered = false;
      const timer = setTimeout(() => {
        answered = true;
        const msg = `ctnet agent: ${req.plugin} ${command} did not finish within ${deadlineMs / 1000} s`;
        log.warn({ type: req.plugin, command, containerId: req.env.CNI_CONTAINERID, deadlineMs }, 'CNI call past its deadline');
        answer({
          exitCode: 1,
          stdout: errorJson(ErrorCode.tryAgainLater, msg, command === 'ADD' ? 'what it did is undone once it ends' : ''),
          stderr: '',
        });
      }, deadlineMs);
      // VERSION concerns no attachment: it waits for nothing.
      const queued =
        command === 'VERSION' ? (fn: () => Promise<void>) => void fn() : (fn: () => Promise<void>) => inTurn(key, fn);
      queued(async () => {
        if (answered) return; // its time ran out while it waited for its turn: it never started
        let outcome: CniOutcome | undefined;
        try {
          outcome = await track(run(req));
        } catch (err) {
          // handle() turns plugin failures into error JSON; this is a bug of ours, still answered in CNI's terms.
          outcome = { exitCode: 1, stdout: errorJson(ErrorCode.internal, 'ctnet agent failed', String(err)), stderr: '' };
        }
        clearTimeout(timer);
        if (!answered) {
          answered = true;
          answer(outcome);
        } else if (command === 'ADD') {
          await track(undo(req, outcome).catch((err) => log.error({ err: String(err) }, 'failed to undo a CNI call')));
        }
      });
    });

  return {
    async serve(req, caller) {
      const reason = cniDeclineReason(caller, req);
      if (reason || !registry[req.plugin]) return { declined: reason ?? 'not a ctnet plugin' };
      return serve(req);
    },
    async idle() {
      while (unsettled.size > 0) await Promise.allSettled([...unsettled]);
    },
  };
}
