/**
 * Programs started with posix_spawn(3) through koffi instead of node:child_process: the way core/exec.ts's run()
 * starts a program in a process that has asked for it (preferPosixSpawn), the CNI plugin binaries.
 *
 * Why: child_process forks the whole Node process (libuv forks), so its page tables are copied and the pages the
 * parent writes next take a fault each: ~4.5 ms of CPU per program in a plugin process, and loading child_process
 * with the stream and net modules it pulls in costs ~3 ms more. A plugin call without the agent runs one or two
 * iptables-restore. glibc's posix_spawn starts the program without copying (CLONE_VM | CLONE_VFORK): ~0.15 ms.
 *
 * The child gets what libuv would give it: stdin, stdout and stderr (memfds: the input written beforehand, the
 * output read after the exit), every signal at its default and none blocked, the caller's other descriptors only
 * where they lack close-on-exec. Its exit is awaited without reaping it (waitid with WNOWAIT) on one of koffi's
 * worker threads, and reaped on the main thread once the time-out is cleared, so a SIGKILL at the time-out can only
 * reach our own child, never a process that took its pid. Only a program named by an absolute path, run without a
 * cwd, comes here; spawnNative returns undefined for anything else, or when koffi or a memfd is not to be had, and
 * the caller takes child_process.
 */
import { closeSync, fstatSync, readSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { libcFunction, loadKoffi } from './native.js';

export interface NativeRunResult {
  /** Exit code, or null when a signal ended the program. */
  code: number | null;
  /** Name of the signal that ended it ('SIGKILL'), or null. */
  signal: string | null;
  stdout: string;
  stderr: string;
}

type Async = { async: (...args: unknown[]) => void };
interface SpawnLib {
  memfdCreate(name: string, flags: number): number;
  faInit(fa: Buffer): number;
  faAddDup2(fa: Buffer, fd: number, newfd: number): number;
  faDestroy(fa: Buffer): number;
  attrInit(attr: Buffer): number;
  attrSetFlags(attr: Buffer, flags: number): number;
  attrSetSigDefault(attr: Buffer, set: Buffer): number;
  attrSetSigMask(attr: Buffer, set: Buffer): number;
  attrDestroy(attr: Buffer): number;
  sigFillSet(set: Buffer): number;
  sigEmptySet(set: Buffer): number;
  spawn(pid: Int32Array, path: string, fa: Buffer, attr: Buffer, argv: (string | null)[], envp: (string | null)[]): number;
  waitid: Async;
  waitpid(pid: number, status: Int32Array, options: number): number;
}

const MFD_CLOEXEC = 1;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const P_PID = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
const WNOHANG = 1;
/** Larger than glibc's posix_spawn_file_actions_t (80 bytes), posix_spawnattr_t (336) and sigset_t (128). */
const opaqueBytes = 512;

let lib: SpawnLib | null | undefined = null;
let preferred = false;

/** Makes run() start programs with posix_spawn in this process (a short-lived one: see the module comment). */
export function preferPosixSpawn(): void {
  preferred = true;
}

function load(): SpawnLib | undefined {
  if (lib !== null) return lib;
  try {
    loadKoffi();
    const f = <F>(prototype: string) => libcFunction<F>(prototype);
    lib = {
      memfdCreate: f('int memfd_create(str name, unsigned int flags)'),
      faInit: f('int posix_spawn_file_actions_init(void *fa)'),
      faAddDup2: f('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
      faDestroy: f('int posix_spawn_file_actions_destroy(void *fa)'),
      attrInit: f('int posix_spawnattr_init(void *attr)'),
      attrSetFlags: f('int posix_spawnattr_setflags(void *attr, short flags)'),
      attrSetSigDefault: f('int posix_spawnattr_setsigdefault(void *attr, const void *set)'),
      attrSetSigMask: f('int posix_spawnattr_setsigmask(void *attr, const void *set)'),
      attrDestroy: f('int posix_spawnattr_destroy(void *attr)'),
      sigFillSet: f('int sigfillset(void *set)'),
      sigEmptySet: f('int sigemptyset(void *set)'),
      spawn: f('int posix_spawn(int *pid, str path, void *fa, void *attr, str *argv, str *envp)'),
      waitid: f('int waitid(int idtype, int id, void *info, int options)'),
      waitpid: f('int waitpid(int pid, int *status, int options)'),
    };
  } catch {
    lib = undefined;
  }
  return lib;
}

function readAll(fd: number): string {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const n = readSync(fd, buf, done, size - done, done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done).toString('utf8');
}

function writeAll(fd: number, data: Buffer): void {
  let done = 0;
  // Positional writes leave the descriptor's offset at 0, where the child starts reading.
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, done);
}

/**
 * Runs `file` (an absolute path) with `args`, `input` on its stdin, `env` as its environment; settles when it has
 * exited, `onTimeout` having been called and the program killed when it ran past `timeoutMs`. Undefined when this
 * path does not apply (see the module comment): nothing was started then. Rejects with a SystemCallError-like Error
 * (its `code` the errno name) when the program could not be started.
 */
export function spawnNative(
  file: string,
  args: readonly string[],
  input: string | Buffer,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<NativeRunResult> | undefined {
  if (!preferred || !file.startsWith('/')) return undefined;
  const c = load();
  if (!c) return undefined;
  const fds: number[] = [];
  const fa = Buffer.alloc(opaqueBytes);
  const attr = Buffer.alloc(opaqueBytes);
  let faReady = false;
  let attrReady = false;
  try {
    for (const name of ['ctnet-stdin', 'ctnet-stdout', 'ctnet-stderr']) {
      const fd = c.memfdCreate(name, MFD_CLOEXEC);
      if (fd < 0) return undefined;
      fds.push(fd);
    }
    const [inFd, outFd, errFd] = fds as [number, number, number];
    writeAll(inFd, typeof input === 'string' ? Buffer.from(input) : input);
    if (c.faInit(fa) !== 0) return undefined;
    faReady = true;
    if (c.faAddDup2(fa, inFd, 0) || c.faAddDup2(fa, outFd, 1) || c.faAddDup2(fa, errFd, 2)) return undefined;
    if (c.attrInit(attr) !== 0) return undefined;
    attrReady = true;
    const all = Buffer.alloc(opaqueBytes);
    const none = Buffer.alloc(opaqueBytes);
    c.sigFillSet(all);
    c.sigEmptySet(none);
    if (
      c.attrSetSigDefault(attr, all) ||
      c.attrSetSigMask(attr, none) ||
      c.attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
    ) {
      return undefined;
    }
    const envp = [...Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])), null];
    const pidOut = new Int32Array(1);
    const err = c.spawn(pidOut, file, fa, attr, [file, ...args, null], envp);
    if (err !== 0) {
      const e = new Error(`spawn ${file} ${errnoName(err)}`) as Error & { code: string; errno: number };
      e.code = errnoName(err);
      e.errno = err;
      closeAll(fds);
      return Promise.reject(e);
    }
    const pid = pidOut[0] as number;
    const owned = fds.splice(0);
    return new Promise((resolve, reject) => {
      // Not yet reaped (only the main thread reaps, below): the pid is still our child's.
      const timer = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* it has just exited: the reap below finds it */
        }
      }, timeoutMs);
      const status = new Int32Array(1);
      const finish = () => {
        try {
          const st = status[0] as number;
          const signal = (st & 0x7f) === 0 ? null : st & 0x7f;
          resolve({
            code: signal === null ? (st >> 8) & 0xff : null,
            signal: signal === null ? null : signalName(signal),
            stdout: readAll(outFd),
            stderr: readAll(errFd),
          });
        } catch (e) {
          reject(e);
        } finally {
          closeAll(owned);
        }
      };
      // Reaps the child if it has exited; true when it has.
      const reap = (): boolean => {
        const r = c.waitpid(pid, status, WNOHANG);
        if (r === 0) return false;
        clearTimeout(timer);
        if (r === pid) finish();
        else {
          closeAll(owned);
          reject(new Error(`waitpid ${pid} failed`));
        }
        return true;
      };
      const poll = () => {
        if (!reap()) setTimeout(poll, 2);
      };
      try {
        const info = Buffer.alloc(128); // siginfo_t, written by the worker: referenced until the callback
        c.waitid.async(P_PID, pid, info, WEXITED | WNOWAIT, () => {
          info.fill(0);
          if (!reap()) poll(); // woken without an exit (an error): look again from the event loop
        });
      } catch {
        poll(); // no worker free (koffi bounds its asynchronous calls): look from the event loop instead
      }
    });
  } catch {
    return undefined;
  } finally {
    if (faReady) c.faDestroy(fa);
    if (attrReady) c.attrDestroy(attr);
    closeAll(fds);
  }
}

function closeAll(fds: number[]): void {
  for (const fd of fds.splice(0)) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

function signalName(signal: number): string {
  return Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] ?? `signal ${signal}`;
}
