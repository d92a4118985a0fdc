/**
 * Image references as Docker reads them: `[registry/]repository[:tag][@digest]`. The first component
 * is a registry when it has a dot or a port, or is `localhost`; otherwise the registry is docker.io
 * and a one-component repository is under `library/`. Pure and unit-tested.
 */
import { CtnetError, ErrorCode } from '../../core/index.js';

export const defaultRegistry = 'docker.io';

export interface ImageRef {
  registry: string;
  repository: string;
  /** Set unless the reference names a digest only. */
  tag?: string;
  digest?: string;
}

const component = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const digestPattern = /^sha256:[0-9a-f]{64}$/;

export function parseReference(text: string): ImageRef {
  const bad = (why: string) => new CtnetError(ErrorCode.invalidConfig, `invalid reference format "${text}": ${why}`);
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestPattern.test(digest)) throw bad('the digest must be sha256: and 64 hex digits');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw bad('invalid tag');
  }
  const parts = rest.split('/');
  let registry = defaultRegistry;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
  }
  if (parts.length === 0 || parts.some((p) => !component.test(p))) throw bad('repository names are lower-case components');
  if (registry === defaultRegistry && parts.length === 1) parts.unshift('library');
  return { registry, repository: parts.join('/'), tag: tag ?? (digest ? undefined : 'latest'), digest };
}

/** The short name Docker shows: `busybox`, `user/app`, `localhost:5000/app`. */
export function familiarRepository(ref: Pick<ImageRef, 'registry' | 'repository'>): string {
  if (ref.registry !== defaultRegistry) return `${ref.registry}/${ref.repository}`;
  return ref.repository.startsWith('library/') ? ref.repository.slice('library/'.length) : ref.repository;
}

/** `repository:tag` as images are named in the store (`busybox:latest`). */
export function familiarName(ref: ImageRef): string {
  const repo = familiarRepository(ref);
  return ref.tag ? `${repo}:${ref.tag}` : `${repo}@${ref.digest}`;
}

/** Whether `text` reads as an image reference at all (and not as a path or the built-in name). */
export function looksLikeReference(text: string): boolean {
  try {
    parseReference(text);
    return true;
  } catch {
    return false;
  }
}
