/**
 * The image store under the state root (names are part of the on-host contract):
 *
 *   layers/<hex of diffID>/fs          one unpacked layer, shared by every image that has it
 *   layers/<hex of diffID>/layer.json  { diffId, size }
 *   image-store/<hex of image ID>/config.json   the config blob as loaded (the ID is its sha256)
 *   image-store/<hex of image ID>/image.json    { id, layers (diffIDs, bottom first), size, created }
 *   image-tags/<repository:tag, URI-encoded>    the image ID that name points at
 *
 * A container's root is an overlay of the layers' fs directories, top first. Everything is made in a
 * temporary name and renamed into place, so a crash leaves no half-made layer or image.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { CtnetError, ErrorCode, wrapError } from '../../core/index.js';
import type { RunnerPaths } from '../paths.js';
import { type ImageConfigFile, type ImageDefaults, imageDefaults } from './config.js';
import { applyLayer } from './layer.js';
import { familiarName, parseReference } from './reference.js';

export interface StoredImage {
  /** sha256:<hex> of the config blob. */
  id: string;
  /** diffIDs, bottom layer first. */
  layers: string[];
  /** Bytes of the unpacked layers. */
  size: number;
  created?: string;
}

export interface ImageListing extends StoredImage {
  tags: string[];
}

function storeDirs(paths: RunnerPaths) {
  return {
    layers: join(paths.root, 'layers'),
    images: join(paths.root, 'image-store'),
    tags: join(paths.root, 'image-tags'),
  };
}

const hexOf = (digest: string) => digest.replace(/^sha256:/, '');

export function layerDir(paths: RunnerPaths, diffId: string): string {
  return join(storeDirs(paths).layers, hexOf(diffId));
}

export function hasLayer(paths: RunnerPaths, diffId: string): boolean {
  try {
    return JSON.parse(readFileSync(join(layerDir(paths, diffId), 'layer.json'), 'utf8')).diffId === diffId;
  } catch {
    return false;
  }
}

export async function digestOf(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/**
 * Unpacks `blob` as the layer `diffId` unless the store has it. The unpacked tar must hash to
 * `diffId` (and the blob to `blobDigest` when given): a mismatch leaves nothing and throws.
 */
export async function storeLayer(
  paths: RunnerPaths,
  diffId: string,
  blob: () => Readable,
  blobDigest?: string,
): Promise<{ size: number; reused: boolean }> {
  if (hasLayer(paths, diffId)) {
    return { size: JSON.parse(readFileSync(join(layerDir(paths, diffId), 'layer.json'), 'utf8')).size, reused: true };
  }
  const { layers } = storeDirs(paths);
  const tmp = join(layers, `.tmp-${hexOf(diffId).slice(0, 16)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'fs'), { recursive: true });
  try {
    // A blob that is not what its descriptor says is refused before anything of it is unpacked.
    if (blobDigest) {
      const actual = await digestOf(blob());
      if (actual !== blobDigest) throw new CtnetError(ErrorCode.invalidConfig, `layer blob ${blobDigest} has digest ${actual}`);
    }
    let applied: Awaited<ReturnType<typeof applyLayer>>;
    try {
      applied = await applyLayer(blob(), join(tmp, 'fs'));
    } catch (cause) {
      throw wrapError(`unpack layer ${diffId}`, cause, ErrorCode.invalidConfig);
    }
    if (applied.diffId !== diffId) {
      throw new CtnetError(ErrorCode.invalidConfig, `layer ${diffId} unpacks to a tar with digest ${applied.diffId}`);
    }
    writeFileSync(join(tmp, 'layer.json'), `${JSON.stringify({ diffId, size: applied.size })}\n`);
    rmSync(layerDir(paths, diffId), { recursive: true, force: true });
    renameSync(tmp, layerDir(paths, diffId));
    return { size: applied.size, reused: false };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Records an image whose layers are all stored; returns its ID. */
export function storeImage(paths: RunnerPaths, configBytes: Buffer): StoredImage {
  const id = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfigFile;
  const layers = config.rootfs?.diff_ids ?? [];
  const missing = layers.find((l) => !hasLayer(paths, l));
  if (missing) throw new CtnetError(ErrorCode.invalidConfig, `image ${id}: layer ${missing} is not in the store`);
  const size = layers.reduce(
    (sum, l) => sum + (JSON.parse(readFileSync(join(layerDir(paths, l), 'layer.json'), 'utf8')).size as number),
    0,
  );
  const image: StoredImage = { id, layers, size, created: config.created };
  const { images } = storeDirs(paths);
  const dir = join(images, hexOf(id));
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'config.json'), configBytes);
  writeFileSync(join(tmp, 'image.json'), `${JSON.stringify(image, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return image;
}

/** Points `name` (repository:tag) at image `id` (moving it from any other image, as Docker does). */
export function tagImage(paths: RunnerPaths, name: string, id: string): string {
  const ref = parseReference(name);
  const familiar = familiarName(ref);
  const { tags } = storeDirs(paths);
  mkdirSync(tags, { recursive: true });
  writeAtomically(join(tags, encodeURIComponent(familiar)), `${id}\n`);
  return familiar;
}

function readTags(paths: RunnerPaths): Map<string, string> {
  const { tags } = storeDirs(paths);
  const out = new Map<string, string>();
  let files: string[] = [];
  try {
    files = readdirSync(tags).filter((f) => !f.includes('.tmp-'));
  } catch {
    return out;
  }
  for (const f of files) {
    try {
      out.set(decodeURIComponent(f), readFileSync(join(tags, f), 'utf8').trim());
    } catch {
      /* removed meanwhile */
    }
  }
  return out;
}

function readImage(paths: RunnerPaths, id: string): StoredImage | undefined {
  try {
    return JSON.parse(readFileSync(join(storeDirs(paths).images, hexOf(id), 'image.json'), 'utf8')) as StoredImage;
  } catch {
    return undefined;
  }
}

export function listStoredImages(paths: RunnerPaths): ImageListing[] {
  const tags = readTags(paths);
  let dirs: string[] = [];
  try {
    dirs = readdirSync(storeDirs(paths).images).filter((d) => /^[0-9a-f]{64}$/.test(d));
  } catch {
    return [];
  }
  return dirs
    .map((d) => readImage(paths, `sha256:${d}`))
    .filter((i): i is StoredImage => i !== undefined)
    .map((i) => ({
      ...i,
      tags: [...tags]
        .filter(([, id]) => id === i.id)
        .map(([name]) => name)
        .sort(),
    }))
    .sort((a, b) => (b.created ?? '').localeCompare(a.created ?? ''));
}

/** The image `text` names: a tag (`busybox`, `busybox:1.36`), an ID or an ID prefix (3+ hex digits). */
export function findStoredImage(paths: RunnerPaths, text: string): StoredImage | undefined {
  const hex = /^(?:sha256:)?([0-9a-f]{3,64})$/.exec(text)?.[1];
  if (hex) {
    const found = listStoredImages(paths).filter((i) => hexOf(i.id).startsWith(hex));
    if (found.length === 1) return found[0];
    if (found.length > 1) throw new CtnetError(ErrorCode.invalidConfig, `image ID prefix "${text}" is ambiguous`);
  }
  let name: string;
  try {
    name = familiarName(parseReference(text));
  } catch {
    return undefined;
  }
  const id = readTags(paths).get(name);
  return id ? readImage(paths, id) : undefined;
}

export function imageConfig(paths: RunnerPaths, id: string): ImageConfigFile {
  return JSON.parse(readFileSync(join(storeDirs(paths).images, hexOf(id), 'config.json'), 'utf8')) as ImageConfigFile;
}

export function storedDefaults(paths: RunnerPaths, id: string): ImageDefaults {
  return imageDefaults(imageConfig(paths, id));
}

/** The layers' directories for an overlay, top layer first. */
export function layerDirs(paths: RunnerPaths, image: StoredImage): string[] {
  return [...image.layers].reverse().map((l) => join(layerDir(paths, l), 'fs'));
}

/**
 * `image rm` of one name: a tag is untagged, and the image deleted once no tag is left; an ID
 * deletes the image with all its tags. Layers no image uses any more are deleted. Returns Docker's
 * lines ("Untagged: …", "Deleted: …").
 */
export function removeStoredImage(paths: RunnerPaths, text: string, inUse: (id: string) => string[]): string[] {
  const image = findStoredImage(paths, text);
  if (!image) throw new CtnetError(ErrorCode.invalidConfig, `no such image: ${text}`);
  const tags = readTags(paths);
  const byId = /^(?:sha256:)?[0-9a-f]{3,64}$/.test(text) && ![...tags.keys()].includes(familiarOrSelf(text));
  const untag = byId ? [...tags].filter(([, id]) => id === image.id).map(([n]) => n) : [familiarOrSelf(text)];
  const remaining = [...tags].filter(([n, id]) => id === image.id && !untag.includes(n));
  const users = remaining.length === 0 ? inUse(image.id) : [];
  if (users.length) {
    throw new CtnetError(ErrorCode.exists, `image ${text} is used by container(s) ${users.join(', ')}`, {
      hint: 'remove those containers first',
    });
  }
  const out: string[] = [];
  const { tags: tagDir, images } = storeDirs(paths);
  for (const n of untag) {
    rmSync(join(tagDir, encodeURIComponent(n)), { force: true });
    out.push(`Untagged: ${n}`);
  }
  if (remaining.length === 0) {
    rmSync(join(images, hexOf(image.id)), { recursive: true, force: true });
    out.push(`Deleted: ${image.id}`);
    pruneLayers(paths);
  }
  return out;
}

function familiarOrSelf(text: string): string {
  try {
    return familiarName(parseReference(text));
  } catch {
    return text;
  }
}

/** Deletes layers no stored image names. */
export function pruneLayers(paths: RunnerPaths): void {
  const used = new Set(listStoredImages(paths).flatMap((i) => i.layers.map(hexOf)));
  let dirs: string[] = [];
  try {
    dirs = readdirSync(storeDirs(paths).layers);
  } catch {
    return;
  }
  for (const d of dirs)
    if (/^[0-9a-f]{64}$/.test(d) && !used.has(d)) rmSync(join(storeDirs(paths).layers, d), { recursive: true, force: true });
}
