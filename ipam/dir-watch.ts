/**
 * Change notices for lease directories, from inotify(7) read synchronously: what lets a long-lived process (the CNI
 * daemon) keep a lease directory's parsed state between calls and still see every change anyone else made.
 *
 * Why inotify and not timestamps: the kernel queues an event in the same system call that creates, writes, renames or
 * deletes a file, before that call returns. Every writer of a lease directory (ctnet, the reference host-local) makes
 * its changes while holding the directory's flock, so when this process takes the lock, every change made since it
 * last held it is already in the queue, and one non-blocking read(2) collects it. Directory and file timestamps can
 * not give that guarantee: they come from a clock that ticks every 1–10 ms, so a change made right after ours can
 * carry our change's mtime and ctime.
 *
 * A watch can stop vouching for its directory; `take()` then says `lost` and the caller re-reads everything:
 * - the queue overflowed (IN_Q_OVERFLOW: events were dropped, for every watch of the process);
 * - the directory itself was deleted, moved or unmounted (IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT, IN_IGNORED).
 * Only local filesystems are watched (`watchable`): on a network filesystem, changes made by another host raise no
 * event here.
 */
import { statfsSync } from 'node:fs';
import { loadKoffi } from '../core/index.js';

const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;
const IN_MODIFY = 0x2;
const IN_ATTRIB = 0x4;
const IN_CLOSE_WRITE = 0x8;
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_DELETE_SELF = 0x400;
const IN_MOVE_SELF = 0x800;
const IN_UNMOUNT = 0x2000;
const IN_Q_OVERFLOW = 0x4000;
const IN_IGNORED = 0x8000;
const IN_ONLYDIR = 0x1000000;
const EAGAIN = 11;
const EINTR = 4;

/** Everything that can change which files a directory holds or what they contain. */
const watchMask =
  IN_MODIFY |
  IN_ATTRIB |
  IN_CLOSE_WRITE |
  IN_MOVED_FROM |
  IN_MOVED_TO |
  IN_CREATE |
  IN_DELETE |
  IN_DELETE_SELF |
  IN_MOVE_SELF |
  IN_ONLYDIR;
const lostMask = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED;

/**
 * statfs f_type of local filesystems, where every change to a directory goes through this kernel and raises its
 * events: ext2/3/4, xfs, btrfs, tmpfs, f2fs, zfs, bcachefs.
 */
const localFilesystems = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010, 0x2fc12fc1, 0xca451a4e]);

export function watchable(path: string): boolean {
  try {
    return localFilesystems.has(Number(statfsSync(path).type));
  } catch {
    return false;
  }
}

interface Inotify {
  fd: number;
  addWatch(path: string): number;
  rmWatch(wd: number): void;
  /** Bytes read into `buf`, 0 when the queue is empty; throws on any other error. */
  read(buf: Buffer): number;
}

let inotify: Inotify | null | undefined;

/** The process's one inotify instance (null when the kernel or the limits refuse one). */
function instance(): Inotify | null {
  if (inotify !== undefined) return inotify;
  try {
    const koffi = loadKoffi();
    const libc = koffi.load('libc.so.6');
    const init1 = libc.func('int inotify_init1(int flags)');
    const addWatch = libc.func('int inotify_add_watch(int fd, const char *path, uint32_t mask)');
    const rmWatch = libc.func('int inotify_rm_watch(int fd, int wd)');
    const read = libc.func('long read(int fd, _Out_ void *buf, size_t count)');
    const fd = init1(IN_NONBLOCK | IN_CLOEXEC) as number;
    inotify =
      fd < 0
        ? null
        : {
            fd,
            addWatch: (path) => addWatch(fd, path, watchMask) as number,
            rmWatch: (wd) => void rmWatch(fd, wd),
            read(buf) {
              for (;;) {
                const n = Number(read(fd, buf, buf.length));
                if (n >= 0) return n;
                const errno = koffi.errno();
                if (errno === EAGAIN) return 0;
                if (errno !== EINTR) throw new Error(`read of inotify descriptor failed: errno ${errno}`);
              }
            },
          };
  } catch {
    inotify = null;
  }
  return inotify;
}

export interface DirWatch {
  /**
   * Names of the entries changed since the last `take` (created, written, deleted, renamed from or to), or `lost`
   * when the watch can no longer vouch for the directory (it is then closed).
   */
  take(): Set<string> | 'lost';
  /** Whether the watch still vouches for its directory (reports nothing, takes nothing). */
  holds(): boolean;
  close(): void;
}

class Watch implements DirWatch {
  changed = new Set<string>();
  lost = false;
  constructor(
    private readonly ino: Inotify,
    readonly wd: number,
  ) {}

  take(): Set<string> | 'lost' {
    pump();
    if (this.lost) {
      this.close();
      return 'lost';
    }
    const out = this.changed;
    this.changed = new Set();
    return out;
  }

  holds(): boolean {
    pump();
    return !this.lost;
  }

  close(): void {
    if (watches.get(this.wd) !== this) return;
    watches.delete(this.wd);
    this.lost = true;
    this.ino.rmWatch(this.wd);
  }
}

const watches = new Map<number, Watch>();
let buffer: Buffer | undefined;

/** Moves every queued event onto its watch. */
function pump(): void {
  const ino = inotify;
  if (!ino) return;
  buffer ??= Buffer.alloc(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = ino.read(buffer);
    } catch {
      for (const w of watches.values()) w.lost = true;
      return;
    }
    if (n === 0) return;
    for (let off = 0; off + 16 <= n; ) {
      const wd = buffer.readInt32LE(off);
      const mask = buffer.readUInt32LE(off + 4);
      const len = buffer.readUInt32LE(off + 12);
      if (mask & IN_Q_OVERFLOW) {
        for (const w of watches.values()) w.lost = true;
      } else {
        const w = watches.get(wd);
        if (w && mask & lostMask) w.lost = true;
        else if (w && len > 0) {
          const end = buffer.indexOf(0, off + 16);
          w.changed.add(buffer.toString('utf8', off + 16, end < 0 || end > off + 16 + len ? off + 16 + len : end));
        }
      }
      off += 16 + len;
    }
  }
}

/**
 * Starts watching directory `path`; undefined when inotify is unavailable (no instance, watch limit reached). Events
 * queued for it before this call are not reported: take the lease lock, watch, then read the directory.
 */
export function watchDir(path: string): DirWatch | undefined {
  const ino = instance();
  if (!ino) return undefined;
  pump();
  const wd = ino.addWatch(path);
  if (wd < 0) return undefined;
  // inotify hands out one descriptor per inode: a second watch of the same directory (by another path) replaces
  // the first, which then no longer hears anything for sure.
  const old = watches.get(wd);
  if (old) {
    old.lost = true;
    watches.delete(wd);
  }
  const w = new Watch(ino, wd);
  watches.set(wd, w);
  return w;
}
