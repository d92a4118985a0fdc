/**
 * Image archives built by the tests themselves: a two-layer image (busybox and an app layer with a
 * whiteout, an opaque directory and a config with every field `run` honours), written as a
 * `docker save` archive, an OCI image layout and an OCI archive, with plain, gzip and zstd layers.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { c as createTar } from 'tar';
import { hostPlatform } from '../runner/oci/index.js';

export const entryScript = `#!/bin/sh
if [ "$1" = serve ]; then exec httpd -f -p 80 -h /app/www; fi
echo "args=$*"
echo "pwd=$(pwd)"
echo "uid=$(id -u)"
echo "foo=$FOO bar=$BAR path=$PATH"
[ -e /etc/removed ] && echo removed=present || echo removed=gone
echo "data=$(ls /data | tr '\\n' ,)"
`;

/** The config blob, with the given layers' diffIDs. */
export function imageConfig(diffIds: string[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      created: '2026-01-02T03:04:05Z',
      architecture: 'amd64',
      os: 'linux',
      config: {
        Entrypoint: ['/app/entry.sh'],
        Cmd: ['serve'],
        Env: ['PATH=/app/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'FOO=from-image', 'BAR=kept'],
        WorkingDir: '/app',
        User: 'app',
        ExposedPorts: { '80/tcp': {} },
      },
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  );
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function tarOf(dir: string): Promise<Buffer> {
  const out = join(dir, '..', `${dir.split('/').pop()}.tar`);
  await createTar({ cwd: dir, file: out, portable: true }, ['.']);
  return readFileSync(out);
}

export interface Layers {
  tars: Buffer[];
  diffIds: string[];
}

/** Layer 1: busybox, /etc/removed, /data/{old1,old2}. Layer 2: the app, a whiteout of /etc/removed, /data opaque with new. */
export async function buildLayers(work: string, busyboxRoot: string): Promise<Layers> {
  const one = join(work, 'layer1');
  execFileSync('cp', ['-a', `${busyboxRoot}/.`, one]);
  writeFileSync(join(one, 'etc', 'removed'), 'x\n');
  mkdirSync(join(one, 'data'));
  writeFileSync(join(one, 'data', 'old1'), '1');
  writeFileSync(join(one, 'data', 'old2'), '2');
  const two = join(work, 'layer2');
  mkdirSync(join(two, 'app', 'www'), { recursive: true });
  mkdirSync(join(two, 'etc'), { recursive: true });
  mkdirSync(join(two, 'data'), { recursive: true });
  writeFileSync(join(two, 'app', 'entry.sh'), entryScript);
  chmodSync(join(two, 'app', 'entry.sh'), 0o755);
  writeFileSync(join(two, 'app', 'www', 'index.html'), 'hello-from-image\n');
  writeFileSync(join(two, 'etc', '.wh.removed'), '');
  writeFileSync(join(two, 'data', '.wh..wh..opq'), '');
  writeFileSync(join(two, 'data', 'new'), 'n');
  const tars = [await tarOf(one), await tarOf(two)];
  return { tars, diffIds: tars.map(sha) };
}

/** `docker save` layout: manifest.json, the config, <n>/layer.tar (uncompressed). */
export async function dockerSaveArchive(work: string, layers: Layers, tag: string): Promise<string> {
  const dir = join(work, 'docker-save');
  mkdirSync(dir);
  const config = imageConfig(layers.diffIds);
  const configName = `${sha(config).slice(7)}.json`;
  writeFileSync(join(dir, configName), config);
  const names = layers.tars.map((tar, i) => {
    mkdirSync(join(dir, `l${i}`));
    writeFileSync(join(dir, `l${i}`, 'layer.tar'), tar);
    return `l${i}/layer.tar`;
  });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: names }]));
  const out = join(work, 'docker-save.tar');
  await createTar({ cwd: dir, file: out, portable: true }, ['.']);
  return out;
}

/**
 * An OCI image layout (directory) under an index for two platforms (only the host's, amd64, is
 * complete), its first layer gzip, its second zstd; `corrupt` swaps one byte of a layer blob.
 */
export async function ociLayout(work: string, layers: Layers, name: string, corrupt = false): Promise<string> {
  const dir = join(work, corrupt ? 'oci-bad' : 'oci');
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer) => {
    writeFileSync(join(dir, 'blobs', 'sha256', sha(b).slice(7)), b);
    return { digest: sha(b), size: b.length };
  };
  const gz = gzipSync(layers.tars[0] as Buffer);
  const raw = join(work, 'layer2.raw');
  writeFileSync(raw, layers.tars[1] as Buffer);
  execFileSync('zstd', ['-q', '-f', raw, '-o', `${raw}.zst`]);
  const zst = readFileSync(`${raw}.zst`);
  const config = put(imageConfig(layers.diffIds));
  const l1 = put(gz);
  const l2 = put(zst);
  if (corrupt) {
    const file = join(dir, 'blobs', 'sha256', l2.digest.slice(7));
    const b = readFileSync(file);
    b[b.length - 20] = (b[b.length - 20] ?? 0) ^ 0xff;
    writeFileSync(file, b);
  }
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l1 },
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', ...l2 },
        ],
      }),
    ),
  );
  const other = put(Buffer.from('{"schemaVersion":2,"config":{"digest":"sha256:00","size":0},"layers":[]}'));
  const index = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...other, platform: { os: 'linux', architecture: 's390x' } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform: hostPlatform() },
        ],
      }),
    ),
  );
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          ...index,
          annotations: { 'org.opencontainers.image.ref.name': name },
        },
      ],
    }),
  );
  return dir;
}

/** The layout as an OCI archive (a tar of it). */
export async function ociArchive(layout: string): Promise<string> {
  const out = `${layout}.tar`;
  await createTar({ cwd: layout, file: out, portable: true }, ['.']);
  return out;
}
