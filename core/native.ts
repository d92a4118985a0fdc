/**
 * Native dependencies (koffi, netlink, libc through koffi) loaded on first use, so importing a module that may need
 * them costs nothing until it does.
 *
 * In the esbuild bundle the module's own resolution path points at the bundle's directory, which
 * may be a CNI plugin directory far from node_modules; the bundle's prelude adds the checkout's
 * node_modules to the main module's paths, so fall back to resolving from there.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { getSystemErrorName } from 'node:util';

function notFound(err: unknown): boolean {
  return (err as { code?: string }).code === 'MODULE_NOT_FOUND';
}

function mainModule(local: NodeJS.Require): NodeJS.Module | undefined {
  return local.main ?? (process as { mainModule?: NodeJS.Module }).mainModule;
}

export function lazyRequire(id: string): unknown {
  const local = createRequire(import.meta.url);
  try {
    return local(id);
  } catch (err) {
    const main = mainModule(local);
    if (!notFound(err) || !main) throw err;
    return main.require(id);
  }
}

/** The file `id` resolves to, by the same rules as lazyRequire. */
export function lazyResolve(id: string): string {
  const local = createRequire(import.meta.url);
  try {
    return local.resolve(id);
  } catch (err) {
    const main = mainModule(local);
    if (!notFound(err) || !main) throw err;
    return local.resolve(id, { paths: main.paths });
  }
}

export type Koffi = typeof import('koffi');

let koffi: Koffi | undefined;

/**
 * koffi's JavaScript entry spends ~10 ms per process finding its binary (probing paths, reading the
 * node executable's ELF header to pick glibc or musl); the binary itself loads in ~1.5–5 ms, and
 * every plugin process pays startup. So load the glibc binary from koffi's platform package
 * directly, and fall back to the documented entry when the layout differs (musl, another
 * platform, a koffi upgrade).
 */
export function loadKoffi(): Koffi {
  if (koffi) return koffi;
  const { platform, arch } = process;
  try {
    const pkg = lazyResolve(`@koromix/koffi-${platform}-${arch}/package.json`);
    const mod = { exports: {} as Partial<Koffi> };
    process.dlopen(mod, join(dirname(pkg), `${platform}_${arch}`, 'koffi.node'));
    if (typeof mod.exports.load === 'function' && typeof mod.exports.errno === 'function') {
      koffi = mod.exports as Koffi;
      return koffi;
    }
  } catch {
    /* fall back to the documented entry */
  }
  koffi = lazyRequire('koffi') as Koffi;
  return koffi;
}

/** An errno's name ('EEXIST'), from either sign of the number. */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return `errno ${errno}`;
  }
}

/** A failed libc call, shaped like Node's system errors (`code` = errno name) so core's hasErrno() finds it. */
export class SystemCallError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, text: string) {
    super(`${syscall}: ${text} (${errnoName(errno)})`);
    this.name = 'SystemCallError';
    this.code = errnoName(errno);
    this.errno = errno;
    this.syscall = syscall;
  }
}

type KoffiLib = ReturnType<Koffi['load']>;
let libc: { lib: KoffiLib; strerror: (errnum: number) => string } | undefined;

function loadLibc(): NonNullable<typeof libc> {
  if (libc) return libc;
  const lib = loadKoffi().load('libc.so.6');
  libc = { lib, strerror: lib.func('const char *strerror(int errnum)') };
  return libc;
}

/**
 * A libc function by its C prototype ('int setns(int fd, int nstype)'), bound through koffi: for the calls Node does
 * not offer. Bind once per module (koffi parses the prototype on every bind), on first use.
 */
export function libcFunction<F>(prototype: string): F {
  return loadLibc().lib.func(prototype) as F;
}

/** A libc call's result, or a SystemCallError naming `syscall` and errno when it returned -1. */
export function checkSyscall(syscall: string, result: number): number {
  if (result !== -1) return result;
  const errno = loadKoffi().errno();
  throw new SystemCallError(syscall, errno, loadLibc().strerror(errno));
}
