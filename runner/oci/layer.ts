/**
 * Unpacks one image layer (a tar, plain, gzip or zstd, told by its first bytes) into a directory of
 * its own, with its whiteouts in overlay form, while hashing both the blob (its digest) and the
 * uncompressed tar (its diffID), so the caller can refuse a layer that is not what the image says.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { PassThrough, type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { x as extract } from 'tar';
import { makeOpaque, makeWhiteout, opaqueMarker, whiteoutPrefix } from './whiteouts.js';

export interface AppliedLayer {
  /** sha256 of the blob as stored (compressed). */
  blobDigest: string;
  /** sha256 of the uncompressed tar: the config's rootfs.diff_ids entry. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
}

/** Hashes what flows through. */
class Tap extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** zstd through fzstd's streaming decoder. */
class Unzstd extends Transform {
  private readonly decoder = new Decompress((data) => this.push(Buffer.from(data)));
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.decoder.push(chunk);
      done();
    } catch (err) {
      done(err as Error);
    }
  }
  override _flush(done: TransformCallback): void {
    try {
      this.decoder.push(new Uint8Array(0), true);
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** Picks the decompressor from the stream's first bytes (gzip 1f 8b, zstd 28 b5 2f fd, else plain). */
class Decompressor extends Transform {
  private inner: Transform | undefined;
  private head = Buffer.alloc(0);
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (!this.inner) {
      this.head = Buffer.concat([this.head, chunk]);
      if (this.head.length < 4) {
        done();
        return;
      }
      const h = this.head;
      this.inner =
        h[0] === 0x1f && h[1] === 0x8b
          ? createGunzip()
          : h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd
            ? new Unzstd()
            : new PassThrough();
      this.inner.on('data', (d: Buffer) => this.push(d));
      this.inner.on('error', (e) => this.destroy(e));
      chunk = h;
    }
    if (this.inner.write(chunk)) done();
    else this.inner.once('drain', done);
  }
  override _flush(done: TransformCallback): void {
    if (!this.inner) {
      // Shorter than a compression magic: a (broken) plain stream.
      this.push(this.head);
      done();
      return;
    }
    this.inner.once('end', () => done());
    this.inner.once('error', done);
    this.inner.end();
  }
}

/** Unpacks `blob` into `dir` (which must exist and be empty). */
export async function applyLayer(blob: Readable, dir: string): Promise<AppliedLayer> {
  const raw = new Tap();
  const plain = new Tap();
  const whiteouts: string[] = [];
  const opaques: string[] = [];
  const unpack = extract({
    cwd: dir,
    preserveOwner: true,
    chmod: true,
    processUmask: 0,
    // Whiteouts are markers, not files: remembered here and made once the layer is unpacked.
    filter: (path) => {
      const p = normalize(path).replace(/^\/+/, '');
      const base = p.slice(p.lastIndexOf('/') + 1);
      if (base === opaqueMarker) opaques.push(dirname(p));
      else if (base.startsWith(whiteoutPrefix)) whiteouts.push(join(dirname(p), base.slice(whiteoutPrefix.length)));
      else return true;
      return false;
    },
  });
  await pipeline(blob, raw, new Decompressor(), plain, unpack);
  for (const d of opaques) {
    const path = join(dir, d);
    mkdirSync(path, { recursive: true });
    makeOpaque(path);
  }
  for (const w of whiteouts) {
    const path = join(dir, w);
    // A whiteout hides what the layers below have; a path this very layer holds stays (image-spec).
    if (exists(path)) continue;
    mkdirSync(dirname(path), { recursive: true });
    makeWhiteout(path);
  }
  return { blobDigest: raw.digest(), diffId: plain.digest(), size: plain.size };
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return existsSync(path);
  }
}
