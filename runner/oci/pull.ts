/**
 * `ctnet pull`: the manifest for this host (an index is followed to its platform's entry), the
 * config, then each layer the store does not have. A layer is downloaded to
 * `tmp/blobs/<hex>.partial` under the state root and resumed from there with a Range request
 * after an interruption; it must hash to its digest before it is unpacked, and the config to its.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CtnetError, ErrorCode } from '../../core/index.js';
import type { RunnerPaths } from '../paths.js';
import type { ImageConfigFile } from './config.js';
import { type Descriptor, isIndex, pickForPlatform } from './platform.js';
import { familiarName, type ImageRef, parseReference } from './reference.js';
import { RegistryClient } from './registry.js';
import { digestOf, findStoredImage, hasLayer, storeImage, storeLayer, tagImage } from './store.js';

export interface PullProgress {
  /** The layer's short ID (12 hex digits of its blob digest). */
  layer: string;
  status: 'Already exists' | 'Waiting' | 'Downloading' | 'Verifying Checksum' | 'Extracting' | 'Pull complete';
  current?: number;
  total?: number;
}

export interface PullResult {
  id: string;
  name: string;
  digest: string;
  /** Whether the name now points at another image than before ("Downloaded newer image" vs "Image is up to date"). */
  downloaded: boolean;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Manifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  manifests?: Descriptor[];
}

async function imageManifest(client: RegistryClient, ref: ImageRef): Promise<{ manifest: Manifest; digest: string }> {
  let reference = ref.digest ?? (ref.tag as string);
  // The digest the reference resolves to (an index's, when it names one), as Docker reports it.
  let named: string | undefined;
  for (let depth = 0; depth < 3; depth++) {
    const { bytes, mediaType } = await client.manifest(reference);
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new CtnetError(ErrorCode.invalidConfig, `manifest ${reference} from ${client.registry} has digest ${digest}`);
    }
    named ??= digest;
    const doc = JSON.parse(bytes.toString('utf8')) as Manifest;
    if (!isIndex(mediaType ?? doc.mediaType, doc)) return { manifest: doc, digest: named };
    const pick = pickForPlatform(doc.manifests ?? []);
    if (!pick) {
      throw new CtnetError(ErrorCode.invalidConfig, `${familiarName(ref)} has no image for this platform`, {
        hint: `the index lists ${(doc.manifests ?? []).map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(', ')}`,
      });
    }
    reference = pick.digest;
  }
  throw new CtnetError(ErrorCode.invalidConfig, `${familiarName(ref)}: indexes nested too deep`);
}

/** Downloads a blob into `file`, resuming a partial download, and checks its digest. */
async function download(
  client: RegistryClient,
  layer: Descriptor,
  file: string,
  progress: (current: number, total?: number) => void,
): Promise<void> {
  const partial = `${file}.partial`;
  let offset = 0;
  try {
    offset = statSync(partial).size;
  } catch {
    offset = 0;
  }
  const res = await client.blob(layer.digest, offset);
  // 206: the registry sends the rest; 200: it sends everything, so start over.
  if (res.status !== 206) offset = 0;
  const total = layer.size;
  let current = offset;
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => {
    current += chunk.length;
    progress(current, total);
  });
  await pipeline(body, createWriteStream(partial, { flags: offset > 0 ? 'a' : 'w' }));
  const actual = await digestOf(createReadStream(partial));
  if (actual !== layer.digest) {
    rmSync(partial, { force: true });
    throw new CtnetError(ErrorCode.invalidConfig, `blob ${layer.digest} from ${client.registry} has digest ${actual}`);
  }
  renameSync(partial, file);
}

export async function pullImage(
  paths: RunnerPaths,
  text: string,
  onProgress: (p: PullProgress) => void = () => {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<PullResult> {
  const ref = parseReference(text);
  const client = new RegistryClient(ref.registry, ref.repository, env);
  const { manifest, digest } = await imageManifest(client, ref);
  const configRes = await client.blob(manifest.config.digest);
  const configBytes = Buffer.from(await configRes.arrayBuffer());
  if (sha256(configBytes) !== manifest.config.digest) {
    throw new CtnetError(
      ErrorCode.invalidConfig,
      `config ${manifest.config.digest} from ${ref.registry} does not match its digest`,
    );
  }
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfigFile;
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new CtnetError(ErrorCode.invalidConfig, `${familiarName(ref)}: the config and the manifest disagree on the layers`);
  }
  const short = (d: Descriptor) => d.digest.slice(7, 19);
  const missing = manifest.layers.filter((_, i) => !hasLayer(paths, diffIds[i] as string));
  for (const l of manifest.layers) onProgress({ layer: short(l), status: missing.includes(l) ? 'Waiting' : 'Already exists' });
  const blobs = join(paths.root, 'tmp', 'blobs');
  mkdirSync(blobs, { recursive: true });
  for (const [i, layer] of manifest.layers.entries()) {
    if (!missing.includes(layer)) continue;
    const file = join(blobs, layer.digest.slice(7));
    await download(client, layer, file, (current, total) =>
      onProgress({ layer: short(layer), status: 'Downloading', current, total }),
    );
    onProgress({ layer: short(layer), status: 'Extracting' });
    try {
      await storeLayer(paths, diffIds[i] as string, () => createReadStream(file));
    } finally {
      rmSync(file, { force: true });
    }
    onProgress({ layer: short(layer), status: 'Pull complete' });
  }
  const before = findStoredImage(paths, text)?.id;
  const image = storeImage(paths, configBytes);
  const name = tagImage(paths, text, image.id);
  return { id: image.id, name, digest, downloaded: before !== image.id };
}
