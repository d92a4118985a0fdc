/**
 * A client of the OCI distribution API (what a registry serves under /v2/): manifests and blobs,
 * anonymous, with HTTP basic auth, or with the bearer-token challenge flow (a 401 names a token
 * realm, service and scope; the token is fetched there, with the credentials when there are any).
 * Plain HTTP is used for loopback registries and for those listed in CTNET_INSECURE_REGISTRIES, as
 * Docker treats 127.0.0.0/8 and its --insecure-registry list.
 */
import { CtnetError, ErrorCode } from '../../core/index.js';
import { type Credentials, credentialsFor } from './credentials.js';
import { defaultRegistry } from './reference.js';

export const manifestAccept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\./.test(name);
}

export function registryBase(registry: string, env: NodeJS.ProcessEnv = process.env): string {
  if (registry === defaultRegistry) return 'https://registry-1.docker.io';
  const insecure = (env.CTNET_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim());
  return `${isLoopback(registry) || insecure.includes(registry) ? 'http' : 'https'}://${registry}`;
}

/** `Bearer realm="…",service="…",scope="…"` → its parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[(m[1] as string).toLowerCase()] = m[2] as string;
  return { scheme, params };
}

export class RegistryClient {
  private authorization: string | undefined;
  private readonly base: string;
  private readonly credentials: Credentials | undefined;

  constructor(
    readonly registry: string,
    readonly repository: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.base = registryBase(registry, env);
    this.credentials = credentialsFor(registry, env);
  }

  /** GET a /v2/<repository>/… path, answering one auth challenge. */
  async get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const url = `${this.base}/v2/${this.repository}/${path}`;
    const send = () =>
      fetch(url, { headers: { ...headers, ...(this.authorization ? { authorization: this.authorization } : {}) } }).catch(
        (cause: unknown) => {
          const why = (cause as { cause?: { message?: string } }).cause?.message ?? (cause as Error).message;
          throw new CtnetError(ErrorCode.io, `failed to reach registry ${this.registry}: ${why}`, { cause });
        },
      );
    let res = await send();
    if (res.status === 401) {
      await res.body?.cancel();
      await this.authenticate(res.headers.get('www-authenticate') ?? '');
      res = await send();
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new CtnetError(ErrorCode.invalidConfig, `registry ${this.registry} denied access to ${this.repository}`, {
        hint: this.credentials
          ? 'check the credentials for this registry in the Docker config (DOCKER_CONFIG or ~/.docker/config.json)'
          : 'log in: put credentials for this registry in the Docker config (DOCKER_CONFIG or ~/.docker/config.json)',
      });
    }
    return res;
  }

  private basic(): string | undefined {
    const c = this.credentials;
    return c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : undefined;
  }

  private async authenticate(header: string): Promise<void> {
    const { scheme, params } = parseChallenge(header);
    if (scheme === 'basic') {
      this.authorization = this.basic();
      return;
    }
    if (scheme !== 'bearer' || !params.realm) {
      throw new CtnetError(ErrorCode.invalidConfig, `registry ${this.registry} asks for unsupported authentication "${header}"`);
    }
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? `repository:${this.repository}:pull`);
    const basic = this.basic();
    let res: Response;
    try {
      res = await fetch(url, { headers: basic ? { authorization: basic } : {} });
    } catch (cause) {
      throw new CtnetError(ErrorCode.io, `failed to reach the token service ${url.origin}: ${(cause as Error).message}`, {
        cause,
      });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new CtnetError(ErrorCode.invalidConfig, `the token service of ${this.registry} refused: HTTP ${res.status}`, {
        hint: 'check the credentials for this registry in the Docker config (DOCKER_CONFIG or ~/.docker/config.json)',
      });
    }
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new CtnetError(ErrorCode.invalidConfig, `the token service of ${this.registry} sent no token`);
    this.authorization = `Bearer ${token}`;
  }

  /** A manifest or index by tag or digest: its bytes and media type. */
  async manifest(reference: string): Promise<{ bytes: Buffer; mediaType: string | undefined }> {
    const res = await this.get(`manifests/${reference}`, { accept: manifestAccept });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new CtnetError(ErrorCode.invalidConfig, `manifest for ${this.registry}/${this.repository}:${reference} not found`, {
        details: 'manifest unknown',
      });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new CtnetError(ErrorCode.io, `failed to get manifest ${reference} from ${this.registry}: HTTP ${res.status}`);
    }
    return { bytes: Buffer.from(await res.arrayBuffer()), mediaType: res.headers.get('content-type')?.split(';')[0] };
  }

  /** A blob, from byte `offset` on (a registry that ignores the range answers 200 with all of it). */
  async blob(digest: string, offset = 0): Promise<Response> {
    const res = await this.get(`blobs/${digest}`, offset > 0 ? { range: `bytes=${offset}-` } : {});
    if (!res.ok) {
      await res.body?.cancel();
      throw new CtnetError(ErrorCode.io, `failed to get blob ${digest} from ${this.registry}: HTTP ${res.status}`);
    }
    return res;
  }
}
