/** The host's OCI platform, and the manifest of an index that runs on it. */
import { arch } from 'node:os';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const archNames: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

export function hostPlatform(): Platform {
  const a = archNames[arch()] ?? arch();
  return { os: 'linux', architecture: a, variant: a === 'arm64' ? 'v8' : undefined };
}

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** The index entry for `platform`: exact variant first, then any variant; entries without a platform last. */
export function pickForPlatform(manifests: Descriptor[], platform: Platform = hostPlatform()): Descriptor | undefined {
  const fits = manifests.filter((m) => m.platform?.os === platform.os && m.platform.architecture === platform.architecture);
  return (
    fits.find((m) => (m.platform?.variant ?? platform.variant) === platform.variant) ??
    fits[0] ??
    manifests.find((m) => !m.platform && !isAttestation(m))
  );
}

function isAttestation(m: Descriptor): boolean {
  return m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
}

export const mediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

export function isIndex(mediaType: string | undefined, doc: { manifests?: unknown }): boolean {
  return mediaType === mediaTypes.ociIndex || mediaType === mediaTypes.dockerList || Array.isArray(doc.manifests);
}
