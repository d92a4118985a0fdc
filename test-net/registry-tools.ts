/**
 * Run inside a sandbox namespace by image-pull.test.ts (`node --import tsx test-net/registry-tools.ts MODE …`):
 *
 *   push REGISTRY REPO LAYOUT TAG_INDEX TAG_MANIFEST
 *       pushes the image of an OCI layout (image-fixtures.ts) over the distribution API: its blobs,
 *       its manifest (tagged TAG_MANIFEST), a copy for another platform, and an index of the two
 *       (tagged TAG_INDEX).
 *   auth-proxy UPSTREAM BASIC_PORT TOKEN_PORT USER PASSWORD LOG
 *       serves the registry at UPSTREAM behind HTTP basic auth on BASIC_PORT, and behind the
 *       bearer-token challenge on TOKEN_PORT (whose /token endpoint hands a token out for the basic
 *       credentials); every request is one JSON line in LOG.
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { hostPlatform } from '../runner/oci/index.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function put(registry: string, repo: string, blob: Buffer): Promise<void> {
  const digest = sha(blob);
  const head = await fetch(`http://${registry}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.ok) return;
  const start = await fetch(`http://${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`upload start: HTTP ${start.status}`);
  const location = new URL(start.headers.get('location') as string, `http://${registry}`);
  location.searchParams.set('digest', digest);
  const done = await fetch(location, {
    method: 'PUT',
    body: new Uint8Array(blob),
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (done.status !== 201) throw new Error(`upload ${digest}: HTTP ${done.status} ${await done.text()}`);
}

async function putManifest(registry: string, repo: string, ref: string, doc: Buffer, mediaType: string): Promise<void> {
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    body: new Uint8Array(doc),
    headers: { 'content-type': mediaType },
  });
  if (res.status !== 201) throw new Error(`manifest ${ref}: HTTP ${res.status} ${await res.text()}`);
}

async function push(registry: string, repo: string, layout: string, tagIndex: string, tagManifest: string): Promise<void> {
  const blob = (digest: string) => readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)));
  const top = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const inner = JSON.parse(blob(top.manifests[0].digest).toString());
  const entry = inner.manifests.find(
    (m: { platform: { architecture: string } }) => m.platform.architecture === hostPlatform().architecture,
  );
  const manifestBytes = blob(entry.digest);
  const manifest = JSON.parse(manifestBytes.toString());
  await put(registry, repo, blob(manifest.config.digest));
  for (const l of manifest.layers) await put(registry, repo, blob(l.digest));
  const ociManifest = 'application/vnd.oci.image.manifest.v1+json';
  await putManifest(registry, repo, tagManifest, manifestBytes, ociManifest);
  const other = Buffer.from(JSON.stringify({ ...manifest, annotations: { 'ctt.platform': 's390x' } }));
  await putManifest(registry, repo, sha(other), other, ociManifest);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: ociManifest, digest: sha(other), size: other.length, platform: { os: 'linux', architecture: 's390x' } },
        { mediaType: ociManifest, digest: sha(manifestBytes), size: manifestBytes.length, platform: hostPlatform() },
      ],
    }),
  );
  await putManifest(registry, repo, tagIndex, index, 'application/vnd.oci.image.index.v1+json');
}

function authProxy(upstream: string, basicPort: number, tokenPort: number, user: string, password: string, log: string): void {
  const basic = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const tokens = new Set<string>();
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const [host, port] = upstream.split(':');
    const up = request(
      { host, port: Number(port), path: req.url, method: req.method, headers: { ...req.headers, host: upstream } },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const record = (server: string, req: IncomingMessage, status: string) =>
    appendFileSync(
      log,
      `${JSON.stringify({ server, method: req.method, url: req.url, authorization: req.headers.authorization ?? '', range: req.headers.range ?? '', status })}\n`,
    );
  createServer((req, res) => {
    if (req.headers.authorization !== basic) {
      record('basic', req, '401');
      res.writeHead(401, { 'www-authenticate': 'Basic realm="ctt"', 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    record('basic', req, 'forwarded');
    forward(req, res);
  }).listen(basicPort, '127.0.0.1');
  createServer((req, res) => {
    if (req.url?.startsWith('/token')) {
      if (req.headers.authorization !== basic) {
        record('token-endpoint', req, '401');
        res.writeHead(401);
        res.end();
        return;
      }
      const token = randomBytes(16).toString('hex');
      tokens.add(token);
      record('token-endpoint', req, 'issued');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    const bearer = req.headers.authorization?.replace(/^Bearer /, '');
    if (!bearer || !tokens.has(bearer)) {
      record('token', req, '401');
      const repo = /^\/v2\/(.+?)\/(manifests|blobs)\//.exec(req.url ?? '')?.[1] ?? '';
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="http://127.0.0.1:${tokenPort}/token",service="ctt-registry",scope="repository:${repo}:pull"`,
      });
      res.end();
      return;
    }
    record('token', req, 'forwarded');
    forward(req, res);
  }).listen(tokenPort, '127.0.0.1');
  process.stdout.write('ready\n');
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'push') {
  const [registry, repo, layout, tagIndex, tagManifest] = args as [string, string, string, string, string];
  push(registry, repo, layout, tagIndex, tagManifest).then(
    () => process.stdout.write('pushed\n'),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
} else if (mode === 'auth-proxy') {
  const [upstream, basicPort, tokenPort, user, password, log] = args as [string, string, string, string, string, string];
  authProxy(upstream, Number(basicPort), Number(tokenPort), user, password, log);
} else {
  process.stderr.write('usage: registry-tools.ts push … | auth-proxy …\n');
  process.exit(2);
}
