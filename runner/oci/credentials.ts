/**
 * Registry credentials from Docker's client config: `$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`, `auths.<registry>` with `auth` (base64 "user:password") or
 * `username`/`password`. Credential helpers (credsStore, credHelpers) are not run.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { defaultRegistry } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, 'config.json');
  return join(env.HOME || homedir(), '.docker', 'config.json');
}

/** The keys Docker's config may use for `registry` (bare host, with a scheme, docker.io's legacy URL). */
function keysFor(registry: string): string[] {
  const keys = [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
  if (registry === defaultRegistry) keys.push('https://index.docker.io/v1/', 'index.docker.io', 'registry-1.docker.io');
  return keys;
}

export function credentialsFor(registry: string, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  let config: DockerConfig;
  try {
    config = JSON.parse(readFileSync(dockerConfigPath(env), 'utf8')) as DockerConfig;
  } catch {
    return undefined;
  }
  for (const key of keysFor(registry)) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    if (entry.auth) {
      const text = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = text.indexOf(':');
      if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
    }
  }
  return undefined;
}
