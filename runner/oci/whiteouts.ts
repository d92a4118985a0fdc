/**
 * Layer whiteouts in the form overlayfs reads in a lower layer (as containerd's overlay snapshotter
 * stores them): a deleted path is a 0/0 character device, an opaque directory has the xattr
 * `trusted.overlay.opaque=y`. Node has neither mknod(2) nor setxattr(2): they come from libc through koffi.
 */
import { CtnetError, checkSyscall, ErrorCode, libcFunction } from '../../core/index.js';

/** The tar names of the OCI whiteout forms (image-spec layer.md). */
export const whiteoutPrefix = '.wh.';
export const opaqueMarker = '.wh..wh..opq';

interface Libc {
  mknod(path: string, mode: number, dev: number): number;
  setxattr(path: string, name: string, value: Buffer, size: number, flags: number): number;
}

let libc: Libc | undefined;

function load(): Libc {
  libc ??= {
    mknod: libcFunction('int mknod(str path, uint32_t mode, uint64_t dev)'),
    setxattr: libcFunction('int setxattr(str path, str name, const void *value, size_t size, int flags)'),
  };
  return libc;
}

function check(syscall: string, rc: number, what: string): void {
  try {
    checkSyscall(syscall, rc);
  } catch (err) {
    throw new CtnetError(ErrorCode.io, `failed to ${what}: ${(err as Error).message}`, { cause: err });
  }
}

const S_IFCHR = 0o020000;

/** Marks `path` deleted for the layers below. */
export function makeWhiteout(path: string): void {
  check('mknod', load().mknod(path, S_IFCHR, 0), `create whiteout ${path}`);
}

/** Hides what the layers below have in directory `path`. */
export function makeOpaque(path: string): void {
  const value = Buffer.from('y');
  check('setxattr', load().setxattr(path, 'trusted.overlay.opaque', value, value.length, 0), `mark ${path} opaque`);
}
