/**
 * `ctnet pull` and `run` of a missing image against a real registry (Debian's docker-registry, the
 * distribution API) run by the test in its sandbox host namespace on 127.0.0.1, with a temp config
 * and storage, stopped by PID. The test pushes its own image (image-fixtures.ts) with its own push
 * helper, and serves basic auth and the bearer-token flow in front of the registry itself
 * (registry-tools.ts). Credentials come from a Docker config in a temp dir (DOCKER_CONFIG or HOME).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { buildLayers, ociLayout } from './image-fixtures.js';
import { assertAllReleased, busyboxRootfs, ctnet, ensureInitHelper, type RunnerEnv, runnerEnv } from './runner-helpers.js';
import { connect, createSandbox, netnsPath, nsRun, repoRoot, tempDir } from './sandbox.js';

test.before(ensureInitHelper);

const registryPort = 5000;
const basicPort = 5001;
const tokenPort = 5002;

function startInNs(t: ExecutionContext, host: string, argv: string[], readyText?: RegExp): Promise<ChildProcess> {
  // nsenter execs the program itself (a network namespace needs no fork): the PID is the program's.
  const child = spawn('nsenter', [`--net=${netnsPath(host)}`, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
  t.teardown(() => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const seen = (b: Buffer) => {
      out += b.toString();
      if (readyText?.test(out)) resolve(child);
    };
    child.stdout?.on('data', seen);
    child.stderr?.on('data', seen);
    child.once('exit', (code) => reject(new Error(`${argv[0]} exited ${code}: ${out}`)));
    if (!readyText) resolve(child);
  });
}

async function waitForRegistry(host: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await nsRun(host, 'busybox', ['wget', '-q', '-O', '-', `http://127.0.0.1:${registryPort}/v2/`], {
      allowFailure: true,
    });
    if (r.code === 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('the registry did not come up');
}

async function setup(t: ExecutionContext) {
  const sb = await createSandbox(t);
  const renv = runnerEnv(t, sb.host);
  const work = tempDir(t, 'registry');
  const storage = join(work, 'storage');
  mkdirSync(storage);
  const config = join(work, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log: {level: warn}',
      'storage:',
      `  filesystem: {rootdirectory: ${storage}}`,
      'http:',
      `  addr: 127.0.0.1:${registryPort}`,
    ].join('\n'),
  );
  await startInNs(t, sb.host, ['/usr/bin/docker-registry', 'serve', config]);
  await waitForRegistry(sb.host);
  const layout = await ociLayout(work, await buildLayers(work, await busyboxRootfs(t)), 'unused');
  const tools = [process.execPath, '--import', 'tsx', join(repoRoot, 'test-net', 'registry-tools.ts')];
  await nsRun(sb.host, tools[0] as string, [
    ...tools.slice(1),
    'push',
    `127.0.0.1:${registryPort}`,
    'ctt/app',
    layout,
    'v1',
    'plain',
  ]);
  const log = join(work, 'proxy.log');
  writeFileSync(log, '');
  await startInNs(
    t,
    sb.host,
    [...tools, 'auth-proxy', `127.0.0.1:${registryPort}`, String(basicPort), String(tokenPort), 'ctt', 's3cret', log],
    /ready/,
  );
  const requests = () =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(
        (l) =>
          JSON.parse(l) as { server: string; method: string; url: string; authorization: string; range: string; status: string },
      );
  return { sb, renv, work, layout, requests };
}

/** A Docker config with credentials for `registry`, in a dir of its own. */
function dockerConfig(t: ExecutionContext, registry: string, user: string, password: string): string {
  const dir = tempDir(t, 'docker-config');
  const auth = Buffer.from(`${user}:${password}`).toString('base64');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [registry]: { auth } } }));
  return dir;
}

async function serves(t: ExecutionContext, renv: RunnerEnv, id: string): Promise<void> {
  const hostPort = Number((await ctnet(renv, ['port', id, '80/tcp'])).stdout.trim().split(':').pop());
  let reply = '';
  for (let i = 0; i < 50 && !/hello-from-image/.test(reply); i++) {
    reply = await connect(renv.host, 'tcp', '127.0.0.1', hostPort, 'GET /index.html HTTP/1.0\r\n\r\n');
    if (!/hello-from-image/.test(reply)) await new Promise((r) => setTimeout(r, 100));
  }
  t.regex(reply, /hello-from-image/, 'the pulled image runs its entrypoint and Cmd on its exposed port, published by -P');
}

test('anonymous pull of an index (the host platform is picked) and run of a missing image pulls it, with its config', async (t) => {
  const { renv } = await setup(t);
  const ref = `127.0.0.1:${registryPort}/ctt/app:v1`;
  const pulled = await ctnet(renv, ['pull', ref]);
  t.regex(pulled.stdout, /^v1: Pulling from 127\.0\.0\.1:5000\/ctt\/app$/m);
  t.is((pulled.stdout.match(/^[0-9a-f]{12}: Pull complete$/gm) ?? []).length, 2, pulled.stdout);
  t.regex(pulled.stdout, /^Digest: sha256:[0-9a-f]{64}$/m);
  t.regex(
    pulled.stdout,
    new RegExp(`^Status: Downloaded newer image for ${ref.replace(/\./g, '\\.')}\\n${ref.replace(/\./g, '\\.')}\\n$`, 'm'),
  );
  const digest = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(pulled.stdout)?.[1] as string;
  const byDigest = await ctnet(renv, ['pull', '-q', `127.0.0.1:${registryPort}/ctt/app@${digest}`]);
  t.is(byDigest.stdout, `127.0.0.1:${registryPort}/ctt/app@${digest}\n`, 'a pull by the digest the tag reported');
  const listed = JSON.parse((await ctnet(renv, ['image', 'ls', '--json'])).stdout) as {
    repository: string;
    tag: string;
    id: string;
  }[];
  const rows = listed.filter((i) => i.repository === `127.0.0.1:${registryPort}/ctt/app`);
  t.deepEqual(rows.map((i) => i.tag).sort(), ['<none>', 'v1'], 'listed by repository, the digest one without a tag');
  t.is(rows[0]?.id, rows[1]?.id, 'one image');
  const again = await ctnet(renv, ['pull', ref]);
  t.regex(again.stdout, /^[0-9a-f]{12}: Already exists$/m);
  t.regex(again.stdout, /^Status: Image is up to date/m);

  // run of an image that is not here: pulled first ("plain" is the manifest itself, no index), layers reused.
  const plain = `127.0.0.1:${registryPort}/ctt/app:plain`;
  const id = await ctnet(renv, ['run', '-d', '-P', plain], { env: { ...renv.env, CTNET_PULL: '' } });
  t.regex(id.stderr, /^Unable to find image '127\.0\.0\.1:5000\/ctt\/app:plain' locally$/m);
  t.regex(id.stderr, /^[0-9a-f]{12}: Already exists$/m);
  await serves(t, renv, id.stdout.trim());
  await ctnet(renv, ['rm', '-f', id.stdout.trim()]);

  const never = await ctnet(renv, ['run', '--rm', '--pull', 'never', `127.0.0.1:${registryPort}/ctt/app:nope`], {
    allowFailure: true,
  });
  t.is(never.code, 125);
  t.regex(never.stderr, /no such image/);
  const unknown = await ctnet(renv, ['pull', `127.0.0.1:${registryPort}/ctt/app:nope`], { allowFailure: true });
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /^ctnet: manifest for 127\.0\.0\.1:5000\/ctt\/app:nope not found$/m);
  await assertAllReleased(t, renv);
});

test('basic auth and the bearer-token flow with credentials from the Docker config; a refused pull says so', async (t) => {
  const { renv, requests } = await setup(t);
  const basicRef = `127.0.0.1:${basicPort}/ctt/app:v1`;
  const denied = await ctnet(renv, ['pull', basicRef], { allowFailure: true });
  t.not(denied.code, 0);
  t.regex(denied.stderr, /^ctnet: registry 127\.0\.0\.1:5001 denied access to ctt\/app$/m);
  t.regex(denied.stderr, /^hint: log in: put credentials/m);

  const withConfig = { ...renv.env, DOCKER_CONFIG: dockerConfig(t, `127.0.0.1:${basicPort}`, 'ctt', 's3cret') };
  const ok = await ctnet(renv, ['pull', '-q', basicRef], { env: withConfig });
  t.is(ok.stdout, `${basicRef}\n`);
  t.true(requests().some((r) => r.server === 'basic' && r.status === 'forwarded' && r.authorization.startsWith('Basic ')));

  // The token flow: credentials from $HOME/.docker/config.json this time.
  const home = tempDir(t, 'home');
  mkdirSync(join(home, '.docker'));
  writeFileSync(
    join(home, '.docker', 'config.json'),
    JSON.stringify({ auths: { [`127.0.0.1:${tokenPort}`]: { username: 'ctt', password: 's3cret' } } }),
  );
  const tokenRef = `127.0.0.1:${tokenPort}/ctt/app:plain`;
  const env = { ...renv.env, HOME: home, DOCKER_CONFIG: '' };
  const r = await ctnet(renv, ['run', '--rm', '--pull', 'missing', '--network', 'none', tokenRef, 'hi'], { env });
  t.regex(r.stdout, /^args=hi$/m, r.stderr);
  const issued = requests().filter((q) => q.server === 'token-endpoint' && q.status === 'issued');
  t.true(issued.length >= 1);
  t.regex(issued[0]?.url ?? '', /service=ctt-registry/);
  t.regex(decodeURIComponent(issued[0]?.url ?? ''), /scope=repository:ctt\/app:pull/);
  t.true(requests().some((q) => q.server === 'token' && q.status === 'forwarded' && q.authorization.startsWith('Bearer ')));
  const wrong = { ...renv.env, DOCKER_CONFIG: dockerConfig(t, `127.0.0.1:${tokenPort}`, 'ctt', 'wrong') };
  const refused = await ctnet(renv, ['pull', `127.0.0.1:${tokenPort}/ctt/app:v1`], { env: wrong, allowFailure: true });
  t.regex(refused.stderr, /^ctnet: the token service of 127\.0\.0\.1:5002 refused: HTTP 401$/m);
  await assertAllReleased(t, renv);
});

test('an interrupted layer download resumes with a range request', async (t) => {
  const { renv, layout, requests } = await setup(t);
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', findManifest(layout)), 'utf8')) as {
    layers: { digest: string; size: number }[];
  };
  const big = manifest.layers[0] as { digest: string; size: number };
  const blobs = join(renv.root, 'tmp', 'blobs');
  mkdirSync(blobs, { recursive: true });
  const half = readFileSync(join(layout, 'blobs', 'sha256', big.digest.slice(7))).subarray(0, Math.floor(big.size / 2));
  writeFileSync(join(blobs, `${big.digest.slice(7)}.partial`), half);
  const env = { ...renv.env, DOCKER_CONFIG: dockerConfig(t, `127.0.0.1:${basicPort}`, 'ctt', 's3cret') };
  const r = await ctnet(renv, ['pull', `127.0.0.1:${basicPort}/ctt/app:plain`], { env });
  t.is((r.stdout.match(/Pull complete/g) ?? []).length, 2, r.stdout);
  const ranged = requests().filter((q) => q.url.endsWith(big.digest) && q.status === 'forwarded');
  t.deepEqual(
    ranged.map((q) => q.range),
    [`bytes=${half.length}-`],
    'the download asked only for the rest',
  );
  const out = await ctnet(renv, ['run', '--rm', '--network', 'none', `127.0.0.1:${basicPort}/ctt/app:plain`, 'x']);
  t.regex(out.stdout, /^removed=gone$/m, 'the resumed layer unpacked whole');
});

/** The image manifest's blob name in the layout (the entry for this host in the inner index). */
function findManifest(layout: string): string {
  const blob = (d: string) => JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', d.slice(7)), 'utf8'));
  const top = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const inner = blob(top.manifests[0].digest);
  const entry = inner.manifests[inner.manifests.length - 1];
  return (entry.digest as string).slice(7);
}
