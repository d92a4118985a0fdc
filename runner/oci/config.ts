/**
 * What an image's config means for `run`, as Docker applies it: Entrypoint and Cmd (the command
 * replaces Cmd; --entrypoint replaces Entrypoint and clears Cmd), Env under -e, WorkingDir and User
 * unless -w/-u, ExposedPorts for -P. Pure and unit-tested.
 */

/** The parts of an OCI/Docker image config (`config` of the config blob) that `run` honours. */
export interface ImageDefaults {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  /** `80/tcp`, `53/udp`. */
  exposedPorts?: string[];
}

/** The image config blob's fields we keep (https://github.com/opencontainers/image-spec/blob/main/config.md). */
export interface ImageConfigFile {
  created?: string;
  architecture?: string;
  os?: string;
  config?: {
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Env?: string[] | null;
    WorkingDir?: string;
    User?: string;
    ExposedPorts?: Record<string, unknown> | null;
  };
  rootfs?: { type?: string; diff_ids?: string[] };
}

export function imageDefaults(file: ImageConfigFile): ImageDefaults {
  const c = file.config ?? {};
  const list = (v: string[] | null | undefined) => (Array.isArray(v) ? v.map(String) : undefined);
  return {
    entrypoint: list(c.Entrypoint),
    cmd: list(c.Cmd),
    env: list(c.Env),
    workingDir: c.WorkingDir || undefined,
    user: c.User || undefined,
    exposedPorts: c.ExposedPorts ? Object.keys(c.ExposedPorts) : undefined,
  };
}

/**
 * The process to run: Entrypoint + Cmd after the overrides. `entrypoint` is --entrypoint as given
 * ("" clears the image's); an empty result is undefined (the caller decides what that means).
 */
export function commandLine(image: ImageDefaults, entrypoint: string | undefined, command: string[]): string[] | undefined {
  const entry = entrypoint !== undefined ? (entrypoint ? [entrypoint] : []) : (image.entrypoint ?? []);
  const cmd = command.length ? command : entrypoint !== undefined ? [] : (image.cmd ?? []);
  const all = [...entry, ...cmd];
  return all.length ? all : undefined;
}
