/**
 * How nft scripts reach the kernel: libnftables inside this process when the library is installed
 * (it ships with the `nft` program: Debian's libnftables1), the `nft` program otherwise.
 *
 * Why in-process: a change through the program costs a process start (~5 ms, and ~5 ms of a
 * blocked event loop to fork a large Node heap) plus, for any change that deletes something, a
 * kernel flush when the program's netfilter socket is closed: releasing such a socket makes the
 * kernel wait for the pending destroy work of earlier commits, an RCU grace period (~25 ms here).
 * A context kept for the life of the process has one socket that is never closed while it works:
 * an add or delete is ~0.3 ms. The flush then happens once, when the process exits, and not at
 * all in a resident process (`ctnet agent`).
 *
 * A netlink socket belongs to the network namespace it was opened in, so contexts are kept per
 * namespace of the calling thread: a context is never used in a namespace other than its own.
 */
import { CtnetError, ErrorCode, type Koffi, loadKoffi, log, run, threadNetnsKey } from '../core/index.js';

export interface NftExec {
  /** What runs the scripts: shown by `ctnet debug` and in logs. */
  readonly driver: 'libnftables' | 'program';
  /** Runs a script as one transaction; throws with nft's error text. */
  apply(script: string): Promise<void>;
  /** Output of an nft command (`list …`, `get element …`), or undefined when the object does not exist. */
  list(command: string): Promise<string | undefined>;
}

const timeoutMs = 20_000;
const missing = /No such file or directory/;

function failure(command: string, text: string): CtnetError {
  const first = command.split('\n')[0] ?? '';
  return new CtnetError(ErrorCode.internal, `nft ${first}${command.includes('\n') ? ' …' : ''}: ${text.trim()}`, {
    details: text.trim(),
  });
}

export class NftProgram implements NftExec {
  readonly driver = 'program' as const;
  constructor(private readonly nft: string) {}

  async apply(script: string): Promise<void> {
    await run(this.nft, ['-f', '-'], { input: script, timeoutMs });
  }

  async list(command: string): Promise<string | undefined> {
    const r = await run(this.nft, ['-f', '-'], { input: command, allowFailure: true, timeoutMs });
    if (r.code === 0) return r.stdout;
    if (missing.test(r.stderr)) return undefined;
    throw failure(command, r.stderr);
  }
}

interface Libnftables {
  ctxNew(flags: number): unknown;
  bufferOutput(ctx: unknown): number;
  bufferError(ctx: unknown): number;
  output(ctx: unknown): string;
  error(ctx: unknown): string;
  runFromBuffer(ctx: unknown, script: string): number;
}

function bind(koffi: Koffi): Libnftables {
  const lib = koffi.load('libnftables.so.1');
  const f = (signature: string) => lib.func(signature) as (...args: unknown[]) => unknown;
  const ctxNew = f('void *nft_ctx_new(uint32_t flags)');
  const bufferOutput = f('int nft_ctx_buffer_output(void *ctx)');
  const bufferError = f('int nft_ctx_buffer_error(void *ctx)');
  const output = f('const char *nft_ctx_get_output_buffer(void *ctx)');
  const error = f('const char *nft_ctx_get_error_buffer(void *ctx)');
  const runFromBuffer = f('int nft_run_cmd_from_buffer(void *ctx, const char *buf)');
  return {
    ctxNew: (flags) => ctxNew(flags),
    bufferOutput: (ctx) => bufferOutput(ctx) as number,
    bufferError: (ctx) => bufferError(ctx) as number,
    output: (ctx) => (output(ctx) as string | null) ?? '',
    error: (ctx) => (error(ctx) as string | null) ?? '',
    runFromBuffer: (ctx, script) => runFromBuffer(ctx, script) as number,
  };
}

export class NftLibrary implements NftExec {
  readonly driver = 'libnftables' as const;
  /** Contexts by network namespace of the calling thread (core threadNetnsKey). */
  private readonly contexts = new Map<string, unknown>();

  private constructor(private readonly lib: Libnftables) {}

  /** The library, or undefined when libnftables (or koffi's binary) cannot be loaded here. */
  static open(): NftLibrary | undefined {
    try {
      return new NftLibrary(bind(loadKoffi()));
    } catch (err) {
      log.debug({ err }, 'libnftables not available; running the nft program');
      return undefined;
    }
  }

  private context(): unknown {
    const netns = threadNetnsKey();
    let ctx = this.contexts.get(netns);
    if (ctx === undefined) {
      ctx = this.lib.ctxNew(0);
      if (!ctx) throw new CtnetError(ErrorCode.internal, 'failed to create an nftables context: nft_ctx_new returned NULL');
      if (this.lib.bufferOutput(ctx) !== 0 || this.lib.bufferError(ctx) !== 0) {
        throw new CtnetError(ErrorCode.internal, 'failed to create an nftables context: cannot buffer its output');
      }
      this.contexts.set(netns, ctx);
    }
    return ctx;
  }

  /** Runs `command`; output and error text are read after every command so neither carries over. */
  private exec(command: string): { ok: boolean; output: string; error: string } {
    const ctx = this.context();
    const ok = this.lib.runFromBuffer(ctx, command) === 0;
    return { ok, output: this.lib.output(ctx), error: this.lib.error(ctx) };
  }

  async apply(script: string): Promise<void> {
    const r = this.exec(script);
    if (!r.ok) throw failure(script, r.error || 'the transaction failed');
  }

  async list(command: string): Promise<string | undefined> {
    const r = this.exec(command);
    if (r.ok) return r.output;
    if (missing.test(r.error)) return undefined;
    throw failure(command, r.error || 'the command failed');
  }
}

let library: NftLibrary | undefined | null = null;

/** The process's one in-process driver, or undefined when libnftables cannot be loaded here. */
export function nftLibrary(): NftLibrary | undefined {
  if (library === null) library = NftLibrary.open();
  return library;
}

/**
 * The in-process driver when libnftables loads, else the program at `nft`, chosen when first used: an
 * attachment's common path speaks nfnetlink itself (nft-netlink.ts) and never needs either, and loading koffi and
 * the library costs a plugin process ~3 ms of CPU.
 * `CTNET_NFT_DRIVER=program` forces the program (for comparison, or a library that misbehaves).
 */
export function openNftExec(nft: string, env: NodeJS.ProcessEnv = process.env): NftExec {
  let chosen: NftExec | undefined;
  const exec = (): NftExec => {
    chosen ??= (env.CTNET_NFT_DRIVER !== 'program' && nftLibrary()) || new NftProgram(nft);
    return chosen;
  };
  return {
    get driver() {
      return exec().driver;
    },
    apply: (script) => exec().apply(script),
    list: (command) => exec().list(command),
  };
}
