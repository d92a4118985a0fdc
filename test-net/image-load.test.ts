/**
 * `ctnet image load` for real: archives the test builds itself (image-fixtures.ts) loaded into a
 * per-test state root, layers shared between images, whiteouts and opaque directories in effect,
 * and each image run with its config (entrypoint, command, env, working dir, user, -P of its
 * exposed port) in a sandbox host namespace.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { run } from '../core/index.js';
import { buildLayers, dockerSaveArchive, ociArchive, ociLayout } from './image-fixtures.js';
import { assertAllReleased, busyboxRootfs, ctnet, ensureInitHelper, type RunnerEnv, runnerEnv } from './runner-helpers.js';
import { connect, createSandbox, netnsPath, repoRoot, tempDir } from './sandbox.js';

test.before(ensureInitHelper);

async function setup(t: ExecutionContext) {
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  const work = tempDir(t, 'images');
  const layers = await buildLayers(work, await busyboxRootfs(t));
  return { renv, work, layers };
}

const storedLayers = (renv: RunnerEnv) => readdirSync(join(renv.root, 'layers')).filter((d) => /^[0-9a-f]{64}$/.test(d));

/** The image's entrypoint prints what it sees (image-fixtures.ts entryScript). */
async function report(renv: RunnerEnv, args: string[]): Promise<Record<string, string>> {
  const r = await ctnet(renv, ['run', '--rm', '--network', 'none', ...args], { allowFailure: true });
  if (r.code !== 0) throw new Error(`${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return Object.fromEntries(
    r.stdout
      .split(/\s+/)
      .filter((w) => w.includes('='))
      .map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]),
  );
}

async function publishedPortServes(t: ExecutionContext, renv: RunnerEnv, image: string): Promise<void> {
  const id = (await ctnet(renv, ['run', '-d', '-P', image])).stdout.trim();
  const port = await ctnet(renv, ['port', id, '80/tcp']);
  const hostPort = Number(port.stdout.trim().split(':').pop());
  t.true(hostPort > 0, port.stdout);
  let reply = '';
  for (let i = 0; i < 50 && !/hello-from-image/.test(reply); i++) {
    reply = await connect(renv.host, 'tcp', '127.0.0.1', hostPort, 'GET /index.html HTTP/1.0\r\n\r\n');
    if (!/hello-from-image/.test(reply)) await new Promise((r) => setTimeout(r, 100));
  }
  t.regex(reply, /hello-from-image/, `${image}: the Cmd "serve" runs httpd on the exposed port, published by -P`);
  await ctnet(renv, ['rm', '-f', id]);
}

test('a docker save archive: loaded, listed, run with its config (entrypoint, cmd, env, workdir, user, -P), whiteouts applied', async (t) => {
  const { renv, work, layers } = await setup(t);
  const archive = await dockerSaveArchive(work, layers, 'ctt/app:v1');
  const load = await ctnet(renv, ['image', 'load', '-i', archive]);
  t.is(load.stdout, 'Loaded image: ctt/app:v1\n');
  const ls = JSON.parse((await ctnet(renv, ['image', 'ls', '--json'])).stdout) as {
    name: string;
    id: string;
    sizeBytes: number;
    createdAt: string;
    layers: number;
  }[];
  const app = ls.find((i) => i.name === 'ctt/app:v1');
  t.truthy(app, JSON.stringify(ls));
  t.regex(app?.id ?? '', /^sha256:[0-9a-f]{64}$/);
  t.is(app?.createdAt, '2026-01-02T03:04:05Z');
  t.is(app?.layers, 2);
  t.true((app?.sizeBytes ?? 0) > 1_000_000, 'the size counts the unpacked layers');
  const table = (await ctnet(renv, ['image', 'ls'])).stdout;
  t.regex(table, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/m);
  t.regex(table, new RegExp(`^ctt/app\\s+v1\\s+${app?.id.slice(7, 19)}\\s+\\d+ days ago\\s+[\\d.]+MB$`, 'm'));

  const seen = await report(renv, ['-e', 'FOO=from-cli', 'ctt/app:v1', 'one', 'two']);
  t.like(seen, {
    pwd: '/app',
    uid: '1000',
    foo: 'from-cli',
    bar: 'kept',
    path: '/app/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    removed: 'gone',
    data: 'new,',
  });
  t.regex(seen.args ?? '', /^one$/, 'the command replaces Cmd, after the entrypoint');
  t.like(await report(renv, ['-w', '/', '-u', '0', 'ctt/app:v1', 'x']), { uid: '0', pwd: '/' }, '-u and -w override the image');
  const latest = await ctnet(renv, ['run', '--rm', 'ctt/app', 'x'], { allowFailure: true });
  t.regex(latest.stderr, /no such image: ctt\/app/, 'a name without a tag means :latest');
  const echoed = await ctnet(renv, ['run', '--rm', '--network', 'none', '--entrypoint', '/bin/echo', 'ctt/app:v1']);
  t.is(echoed.stdout, '\n', '--entrypoint clears the image Cmd');
  await publishedPortServes(t, renv, 'ctt/app:v1');
  await assertAllReleased(t, renv);
});

test('OCI archive, OCI layout and stdin: layers shared, gzip and zstd, an index for the host platform; rm untags, then deletes', async (t) => {
  const { renv, work, layers } = await setup(t);
  const layout = await ociLayout(work, layers, 'ctt/app:oci');
  const archive = await ociArchive(layout);
  t.is((await ctnet(renv, ['image', 'load', '-i', archive])).stdout, 'Loaded image: ctt/app:oci\n');
  t.is(storedLayers(renv).length, 2);
  t.is((await report(renv, ['ctt/app:oci', 'x'])).removed, 'gone');
  await publishedPortServes(t, renv, 'ctt/app:oci');

  // The same layers again, as a docker save archive on stdin: nothing new is unpacked.
  const saved = await dockerSaveArchive(work, layers, 'ctt/other:1');
  const cli = [process.execPath, '--import', 'tsx', join(repoRoot, 'cli', 'main.ts')].join(' ');
  const fromStdin = await run('nsenter', [`--net=${netnsPath(renv.host)}`, 'sh', '-c', `${cli} image load < ${saved}`], {
    env: renv.env,
    cwd: repoRoot,
  });
  t.is(fromStdin.stdout, 'Loaded image: ctt/other:1\n');
  t.is(storedLayers(renv).length, 2, 'layers are shared between images');
  t.is((await ctnet(renv, ['image', 'load', '-i', layout])).stdout, 'Loaded image: ctt/app:oci\n', 'a layout directory');

  // A container keeps its image: the last tag cannot go while it exists.
  await ctnet(renv, ['run', '--name', 'user', '--network', 'none', 'ctt/other:1', 'x']);
  t.is((await ctnet(renv, ['image', 'rm', 'ctt/app:oci'])).stdout, 'Untagged: ctt/app:oci\n');
  t.is(storedLayers(renv).length, 2);
  const busy = await ctnet(renv, ['image', 'rm', 'ctt/other:1'], { allowFailure: true });
  t.is(busy.code, 1);
  t.regex(busy.stderr, /used by container\(s\) user/);
  await ctnet(renv, ['rm', 'user']);
  const rm = await ctnet(renv, ['image', 'rm', 'ctt/other:1']);
  t.regex(rm.stdout, /^Untagged: ctt\/other:1\nDeleted: sha256:[0-9a-f]{64}\n$/);
  t.deepEqual(storedLayers(renv), [], 'the last image gone takes its layers');
  await assertAllReleased(t, renv);
});

test('a layer whose content does not match its digest is refused and leaves nothing; a rootfs tarball is pointed to image import', async (t) => {
  const { renv, work, layers } = await setup(t);
  const bad = await ctnet(renv, ['image', 'load', '-i', await ociLayout(work, layers, 'ctt/bad:1', true)], {
    allowFailure: true,
  });
  t.not(bad.code, 0);
  t.regex(bad.stderr, /^ctnet: .*(digest|zstd|invalid|unexpected).*$/m);
  t.is((await ctnet(renv, ['image', 'ls', '--json'])).stdout.includes('ctt/bad'), false);
  t.deepEqual(
    readdirSync(join(renv.root, 'layers')).filter((d) => !/^[0-9a-f]{64}$/.test(d) || d === ''),
    [],
    'no temporary layer is left',
  );
  const plain = join(work, 'layer1.tar');
  const notImage = await ctnet(renv, ['image', 'load', '-i', plain], { allowFailure: true });
  t.regex(notImage.stderr, /is not an image archive/);
  t.regex(notImage.stderr, /^hint: .*ctnet image import/m);
});
