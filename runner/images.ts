/**
 * Images: read-only root filesystems a container's private overlay layer sits on.
 *
 * - `default` (built in, no download): a small skeleton (/etc with the host's passwd, group,
 *   ld.so cache…, empty /tmp, /root, the host's top-level symlinks such as bin → usr/bin) plus
 *   the host's /usr (and any real /bin, /lib… directory) as read-only lower layers, each with a
 *   private upper layer. The host is never written to: every write lands in the container.
 * - a directory (`/path/to/rootfs`, `./rootfs`): used as the lower layer as it is.
 * - an imported tarball (`ctnet image import NAME FILE.tar`, `docker export` format), unpacked
 *   into `images/<name>/rootfs`.
 */
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { CtnetError, ErrorCode, run, wrapError } from '../core/index.js';
import { findStoredImage, type ImageDefaults, layerDirs, storedDefaults } from './oci/index.js';
import type { RunnerPaths } from './paths.js';

export const defaultImageName = 'default';
/** `details` of the error for an image that is nowhere (run pulls it then). */
export const noSuchImage = 'image: not found';
/** Bump when the skeleton's content changes, so old roots rebuild it. */
const skeletonVersion = '1';

/** Where an image's layers come from, ready to be turned into overlay mounts. */
export interface ResolvedImage {
  name: string;
  /** A loaded or pulled image: its ID (sha256:…), which the container keeps. */
  id?: string;
  /** The lower layer(s) of the container's root overlay (an overlay lowerdir: top first, colon-separated). */
  rootLower: string;
  /** The same directories as a list, top first (for reading files of the image such as /etc/passwd). */
  lowers: string[];
  /** What the image's config says about running it (loaded and pulled images). */
  defaults?: ImageDefaults;
  /** Further read-only lowers mounted at a path inside the root (the default image's /usr). */
  subLayers: { lower: string; target: string }[];
}

export interface ImageInfo {
  name: string;
  kind: 'builtin' | 'imported';
  rootfs: string;
  createdAt?: string;
  source?: string;
  sizeBytes?: number;
}

const etcFiles = [
  'passwd',
  'group',
  'nsswitch.conf',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'services',
  'protocols',
  'os-release',
  'alternatives',
  'localtime',
  'ssl',
];
const topLevelDirs = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];

export function validateImageName(name: string): void {
  if (!/^[a-z0-9][a-z0-9_.-]{0,127}$/.test(name)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid image name "${name}": use lower-case letters, digits, _ . -`);
  }
}

/** The host directories the default image shows read-only (real directories only; symlinks are copied). */
export function hostSystemDirs(hostRoot = '/'): string[] {
  const out = ['usr'];
  for (const d of topLevelDirs) {
    try {
      if (lstatSync(join(hostRoot, d)).isDirectory()) out.push(d);
    } catch {
      /* absent on this host */
    }
  }
  return out;
}

/** Builds the default image's skeleton once per state root (atomically, by rename). */
export function ensureDefaultSkeleton(paths: RunnerPaths, hostRoot = '/'): string {
  const dir = join(paths.images, '.default');
  const marker = join(dir, 'rootfs', 'etc', 'ctnet-default-image');
  try {
    if (readFileSync(marker, 'utf8').trim() === skeletonVersion) return join(dir, 'rootfs');
  } catch {
    /* not built yet */
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const root = join(tmp, 'rootfs');
  for (const d of ['etc', 'root', 'home', 'proc', 'sys', 'dev', 'run', 'mnt', 'opt', 'srv', 'var/lib', 'var/log', 'usr']) {
    mkdirSync(join(root, d), { recursive: true, mode: d === 'root' ? 0o700 : 0o755 });
  }
  for (const d of ['tmp', 'var/tmp']) mkdirSync(join(root, d), { recursive: true, mode: 0o1777 });
  for (const d of topLevelDirs) {
    const host = join(hostRoot, d);
    try {
      const st = lstatSync(host);
      if (st.isSymbolicLink()) symlinkSync(readlinkSync(host), join(root, d));
      else if (st.isDirectory()) mkdirSync(join(root, d));
    } catch {
      /* absent on this host */
    }
  }
  for (const f of etcFiles) {
    const src = join(hostRoot, 'etc', f);
    if (existsSync(src) || isSymlink(src)) cpSync(src, join(root, 'etc', f), { recursive: true, verbatimSymlinks: true });
  }
  writeFileSync(marker.replace(dir, tmp), `${skeletonVersion}\n`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(paths.images, { recursive: true });
  renameSync(tmp, dir);
  return join(dir, 'rootfs');
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function importedDir(paths: RunnerPaths, name: string): string {
  return join(paths.images, name);
}

/** Whether `ref` is the built-in image, a directory or an imported root filesystem (never pulled). */
export function isLocalImage(ref: string): boolean {
  return ref === defaultImageName || isAbsolute(ref) || ref.startsWith('./') || ref.startsWith('../');
}

/** Resolves what `ctnet run IMAGE` names: default, a directory path, or an imported image. */
export function resolveImage(paths: RunnerPaths, ref: string): ResolvedImage {
  if (ref === defaultImageName) {
    const skeleton = ensureDefaultSkeleton(paths);
    return {
      name: defaultImageName,
      rootLower: skeleton,
      lowers: [skeleton],
      subLayers: hostSystemDirs().map((d) => ({ lower: join('/', d), target: `/${d}` })),
    };
  }
  if (isAbsolute(ref) || ref.startsWith('./') || ref.startsWith('../')) {
    const dir = resolve(ref);
    let ok = false;
    try {
      ok = statSync(dir).isDirectory();
    } catch {
      ok = false;
    }
    if (!ok) throw new CtnetError(ErrorCode.invalidConfig, `no such image: the directory ${dir} does not exist`);
    return { name: dir, rootLower: dir, lowers: [dir], subLayers: [] };
  }
  const rootfs = join(importedDir(paths, ref), 'rootfs');
  if (/^[a-z0-9][a-z0-9_.-]*$/.test(ref) && existsSync(join(importedDir(paths, ref), 'image.json'))) {
    return { name: ref, rootLower: rootfs, lowers: [rootfs], subLayers: [] };
  }
  const stored = findStoredImage(paths, ref);
  if (stored) {
    const lowers = layerDirs(paths, stored);
    if (lowers.length === 0) throw new CtnetError(ErrorCode.invalidConfig, `image ${ref} has no layers`);
    return {
      name: ref,
      id: stored.id,
      rootLower: lowers.join(':'),
      lowers,
      subLayers: [],
      defaults: storedDefaults(paths, stored.id),
    };
  }
  throw new CtnetError(ErrorCode.invalidConfig, `no such image: ${ref}`, {
    details: noSuchImage,
    hint: 'use "default", a directory, an image loaded with `ctnet image load` or pulled with `ctnet pull`',
  });
}

/** Unpacks a root-filesystem tarball (any compression tar detects) as image `name`. */
export async function importImage(paths: RunnerPaths, name: string, tarball: string): Promise<ImageInfo> {
  validateImageName(name);
  if (name === defaultImageName)
    throw new CtnetError(ErrorCode.exists, `image name "${name}" is reserved for the built-in image`);
  const dir = importedDir(paths, name);
  if (existsSync(dir)) throw new CtnetError(ErrorCode.exists, `image ${name} already exists`, { hint: `ctnet image rm ${name}` });
  if (!existsSync(tarball)) throw new CtnetError(ErrorCode.invalidConfig, `failed to import ${tarball}: no such file`);
  const tmp = join(paths.images, `.import-${name}-${process.pid}`);
  mkdirSync(join(tmp, 'rootfs'), { recursive: true });
  try {
    await run('tar', ['-xf', resolve(tarball), '-C', join(tmp, 'rootfs'), '--numeric-owner', '--same-permissions'], {
      timeoutMs: 600_000,
    });
    const du = await run('du', ['-sb', join(tmp, 'rootfs')], { allowFailure: true });
    const info: ImageInfo = {
      name,
      kind: 'imported',
      rootfs: join(dir, 'rootfs'),
      createdAt: new Date().toISOString(),
      source: resolve(tarball),
      sizeBytes: Number(du.stdout.split('\t')[0]) || undefined,
    };
    writeFileSync(join(tmp, 'image.json'), `${JSON.stringify(info, null, 2)}\n`);
    renameSync(tmp, dir);
    return info;
  } catch (cause) {
    rmSync(tmp, { recursive: true, force: true });
    throw wrapError(`import image ${name} from ${tarball}`, cause, ErrorCode.io);
  }
}

export function listImages(paths: RunnerPaths): ImageInfo[] {
  const out: ImageInfo[] = [{ name: defaultImageName, kind: 'builtin', rootfs: `/ (read-only: ${hostSystemDirs().join(', ')})` }];
  let names: string[] = [];
  try {
    names = readdirSync(paths.images).filter((n) => !n.startsWith('.'));
  } catch {
    /* no images yet */
  }
  for (const n of names.sort()) {
    try {
      out.push(JSON.parse(readFileSync(join(importedDir(paths, n), 'image.json'), 'utf8')) as ImageInfo);
    } catch {
      /* half-imported leftovers are not images */
    }
  }
  return out;
}

/** Removes an imported image; `inUseBy` names the containers still based on it. */
export function removeImage(paths: RunnerPaths, name: string, inUseBy: string[]): void {
  if (name === defaultImageName) throw new CtnetError(ErrorCode.invalidConfig, 'the built-in default image cannot be removed');
  const dir = importedDir(paths, name);
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(name) || !existsSync(join(dir, 'image.json'))) {
    throw new CtnetError(ErrorCode.invalidConfig, `no such image: ${name}`);
  }
  if (inUseBy.length > 0) {
    throw new CtnetError(ErrorCode.exists, `image ${name} is used by container(s) ${inUseBy.join(', ')}`, {
      hint: 'remove those containers first',
    });
  }
  rmSync(dir, { recursive: true, force: true });
}

/** uid:gid for `-u`: numeric as given, a name looked up in the image's /etc/passwd. */
export function resolveUser(lowers: string[], user: string): string {
  const [u = '', g] = user.split(':');
  const lookup = (file: string, name: string): string | undefined => {
    for (const lower of lowers) {
      try {
        for (const line of readFileSync(join(lower, 'etc', file), 'utf8').split('\n')) {
          const f = line.split(':');
          if (f[0] === name) return file === 'passwd' ? `${f[2]}:${f[3]}` : f[2];
        }
      } catch {
        /* try the next layer */
      }
    }
    return undefined;
  };
  let uid: string;
  let gid: string | undefined;
  if (/^\d+$/.test(u)) uid = u;
  else {
    const found = lookup('passwd', u);
    if (!found) throw new CtnetError(ErrorCode.invalidConfig, `unable to find user ${u}: no matching entries in passwd file`);
    [uid = '0', gid] = found.split(':');
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = g;
    else {
      const found = lookup('group', g);
      if (!found) throw new CtnetError(ErrorCode.invalidConfig, `unable to find group ${g}: no matching entries in group file`);
      gid = found;
    }
  }
  return `${uid}:${gid ?? uid}`;
}
