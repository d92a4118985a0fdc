/**
 * `image load`: a `docker save` archive, an OCI image layout (a directory) or an OCI archive (that
 * layout as a tar), from a file or a stream, optionally compressed. The archive is unpacked into a
 * temporary directory under the state root; each image's layers go into the shared layer store in
 * order, checked against the digests its manifest and config name.
 */
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { x as extract } from 'tar';
import { CtnetError, ErrorCode, wrapError } from '../../core/index.js';
import type { RunnerPaths } from '../paths.js';
import type { ImageConfigFile } from './config.js';
import { type Descriptor, isIndex, pickForPlatform } from './platform.js';
import { storeImage, storeLayer, tagImage } from './store.js';

export interface LoadedImage {
  id: string;
  /** repository:tag names given to it (none: loaded untagged). */
  names: string[];
}

/** Loads every image of the archive or layout at `source` (a path), or of `stream` when given. */
export async function loadImages(paths: RunnerPaths, source: string, stream?: Readable): Promise<LoadedImage[]> {
  if (!stream && existsSync(source) && statSync(source).isDirectory()) return loadLayout(paths, source);
  const tmp = join(paths.root, 'tmp', `load-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { recursive: true });
  try {
    const input = stream ?? openFile(source);
    const head = await peek(input);
    const unpack = extract({ cwd: tmp, preserveOwner: false });
    if (head.gzip) await pipeline(head.stream, createGunzip(), unpack);
    else await pipeline(head.stream, unpack);
    if (existsSync(join(tmp, 'manifest.json'))) return await loadDockerSave(paths, tmp);
    if (existsSync(join(tmp, 'index.json'))) return await loadLayout(paths, tmp);
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `${source} is not an image archive: it has neither manifest.json (docker save) nor index.json (OCI)`,
      { hint: 'a root-filesystem tarball (docker export) is imported with `ctnet image import NAME FILE`' },
    );
  } catch (err) {
    if (err instanceof CtnetError) throw err;
    throw wrapError(`load images from ${source}`, err, ErrorCode.io);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function openFile(file: string): Readable {
  if (!existsSync(file)) throw new CtnetError(ErrorCode.invalidConfig, `failed to load ${file}: no such file`);
  return createReadStream(file);
}

/** Reads the first chunk to tell gzip from plain tar, and gives back a stream with it in front. */
async function peek(input: Readable): Promise<{ stream: Readable; gzip: boolean }> {
  const out = new PassThrough();
  const first: Buffer | null = await new Promise((resolve, reject) => {
    input.once('readable', () => resolve(input.read() as Buffer | null));
    input.once('end', () => resolve(null));
    input.once('error', reject);
  });
  if (first) out.write(first);
  input.pipe(out);
  return { stream: out, gzip: !!first && first[0] === 0x1f && first[1] === 0x8b };
}

/** A path named inside the archive, kept inside it. */
function inside(root: string, name: string): string {
  const p = normalize(name).replace(/^(\.\.\/|\/)+/, '');
  return join(root, p);
}

function readJson<T>(file: string, what: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (cause) {
    throw new CtnetError(ErrorCode.invalidConfig, `failed to read ${what}: ${(cause as Error).message}`, { cause });
  }
}

interface DockerSaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function loadDockerSave(paths: RunnerPaths, dir: string): Promise<LoadedImage[]> {
  const entries = readJson<DockerSaveEntry[]>(join(dir, 'manifest.json'), 'manifest.json');
  const out: LoadedImage[] = [];
  for (const e of entries) {
    const configBytes = readFileSync(inside(dir, e.Config));
    const config = JSON.parse(configBytes.toString('utf8')) as ImageConfigFile;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== e.Layers.length) {
      throw new CtnetError(
        ErrorCode.invalidConfig,
        `image ${e.Config}: the config names ${diffIds.length} layers, the manifest ${e.Layers.length}`,
      );
    }
    for (const [i, layer] of e.Layers.entries()) {
      await storeLayer(paths, diffIds[i] as string, () => createReadStream(inside(dir, layer)));
    }
    out.push(finish(paths, configBytes, e.RepoTags ?? []));
  }
  return out;
}

function finish(paths: RunnerPaths, configBytes: Buffer, names: string[]): LoadedImage {
  const image = storeImage(paths, configBytes);
  return { id: image.id, names: names.map((n) => tagImage(paths, n, image.id)) };
}

interface OciManifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  manifests?: Descriptor[];
}

function blobPath(dir: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  if (alg !== 'sha256' || !hex || !/^[0-9a-f]{64}$/.test(hex)) {
    throw new CtnetError(ErrorCode.invalidConfig, `unsupported digest ${digest}`);
  }
  return join(dir, 'blobs', alg, hex);
}

/** The name an index entry gives its image: containerd's full name, else a ref.name that is a full reference. */
function nameOf(d: Descriptor): string | undefined {
  const a = d.annotations ?? {};
  const full = a['io.containerd.image.name'];
  if (full) return full;
  const ref = a['org.opencontainers.image.ref.name'];
  return ref && /[:/]/.test(ref) ? ref : undefined;
}

async function loadLayout(paths: RunnerPaths, dir: string): Promise<LoadedImage[]> {
  const index = readJson<{ manifests?: Descriptor[] }>(join(dir, 'index.json'), 'index.json');
  const out: LoadedImage[] = [];
  for (const d of index.manifests ?? []) {
    const manifest = resolveManifest(dir, d);
    const configBytes = readFileSync(blobPath(dir, manifest.config.digest));
    const config = JSON.parse(configBytes.toString('utf8')) as ImageConfigFile;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length) {
      throw new CtnetError(ErrorCode.invalidConfig, `image ${d.digest}: the config and the manifest disagree on the layers`);
    }
    for (const [i, layer] of manifest.layers.entries()) {
      await storeLayer(paths, diffIds[i] as string, () => createReadStream(blobPath(dir, layer.digest)), layer.digest);
    }
    const name = nameOf(d);
    out.push(finish(paths, configBytes, name ? [name] : []));
  }
  return out;
}

/** An index entry down to the image manifest for this host (nested indexes are followed). */
function resolveManifest(dir: string, d: Descriptor): OciManifest {
  const doc = readJson<OciManifest>(blobPath(dir, d.digest), `manifest ${d.digest}`);
  if (!isIndex(d.mediaType ?? doc.mediaType, doc)) return doc;
  const pick = pickForPlatform(doc.manifests ?? []);
  if (!pick) throw new CtnetError(ErrorCode.invalidConfig, `index ${d.digest} has no image for this platform`);
  return resolveManifest(dir, pick);
}
