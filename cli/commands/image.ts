/** `ctnet image load|import|ls|rm`: images kept under the state root. */
import type { Command } from 'commander';
import { CtnetError, ErrorCode } from '../../core/index.js';
import * as r from '../../runner/index.js';
import { ago, eachName, printJson, printTable } from '../output.js';
import { pullProgress } from '../pull-progress.js';

type Runner = typeof r;

/** Containers (names) whose image is `id` or the legacy image `name`. */
function usersOf(
  r: Runner,
  paths: ReturnType<Runner['runnerPaths']>,
  match: (c: { image: string; imageId?: string }) => boolean,
) {
  return r
    .listRecords(paths)
    .filter((c) => match(c.config))
    .map((c) => c.config.name);
}

function size(bytes: number | undefined): string {
  if (!bytes) return '';
  return bytes >= 1e9
    ? `${(bytes / 1e9).toFixed(2)}GB`
    : bytes >= 1e6
      ? `${(bytes / 1e6).toFixed(1)}MB`
      : `${(bytes / 1e3).toFixed(1)}kB`;
}

/** Pulls `ref` with Docker's messages and per-layer progress; returns the stored name. */
export async function pullWithProgress(
  r: Runner,
  paths: ReturnType<Runner['runnerPaths']>,
  ref: string,
  out: { write(text: string): void; terminal: boolean; quiet?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const parsed = r.parseReference(ref);
  const say = (text: string) => void (out.quiet ? undefined : out.write(text));
  if (!ref.includes(':') && !ref.includes('@')) say('Using default tag: latest\n');
  say(`${parsed.tag ?? parsed.digest}: Pulling from ${r.familiarRepository(parsed)}\n`);
  const progress = pullProgress((t) => say(t), out.terminal);
  const result = await r.pullImage(paths, ref, (p) => progress.update(p), env);
  progress.finish();
  say(`Digest: ${result.digest}\n`);
  say(`Status: ${result.downloaded ? 'Downloaded newer image' : 'Image is up to date'} for ${result.name}\n`);
  return result.name;
}

export function register(program: Command): void {
  program
    .command('pull')
    .description('pull an image from a registry (credentials from the Docker config: DOCKER_CONFIG or ~/.docker/config.json)')
    .argument('<image>', '[registry/]repository[:tag|@digest]')
    .option('-q, --quiet', 'print only the image name')
    .action(async (ref: string, f: { quiet?: boolean }) => {
      const name = await pullWithProgress(r, r.runnerPaths(), ref, {
        write: (t) => process.stdout.write(t),
        terminal: !!process.stdout.isTTY,
        quiet: f.quiet,
      });
      process.stdout.write(`${name}\n`);
    });

  const image = program.command('image').description('manage images');
  image
    .command('load')
    .description('load images from a docker-save archive, an OCI archive or an OCI layout directory (stdin by default)')
    .option('-i, --input <file>', 'archive file or OCI layout directory ("-": stdin)')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (f: { input?: string; quiet?: boolean }) => {
      const fromStdin = !f.input || f.input === '-';
      if (fromStdin && process.stdin.isTTY) {
        throw new CtnetError(ErrorCode.invalidConfig, 'requested load from stdin, but stdin is a terminal', {
          hint: 'ctnet image load -i FILE, or ctnet image load < FILE',
        });
      }
      const loaded = await r.loadImages(
        r.runnerPaths(),
        fromStdin ? 'stdin' : (f.input as string),
        fromStdin ? process.stdin : undefined,
      );
      if (f.quiet) return;
      for (const l of loaded) {
        if (l.names.length === 0) process.stdout.write(`Loaded image ID: ${l.id}\n`);
        for (const n of l.names) process.stdout.write(`Loaded image: ${n}\n`);
      }
    });
  image
    .command('import')
    .description('import a root-filesystem tarball (docker export format) as image NAME')
    .argument('<name>')
    .argument('<file>', 'tar file, optionally compressed')
    .action(async (name: string, file: string) => {
      const info = await r.importImage(r.runnerPaths(), name, file);
      process.stdout.write(`${info.name}\n`);
    });
  image
    .command('ls')
    .description('list images')
    .option('--json', 'print JSON')
    .option('-q, --quiet', 'image IDs only')
    .action(async (f: { json?: boolean; quiet?: boolean }) => {
      const paths = r.runnerPaths();
      const stored = r.listStoredImages(paths);
      const rows = [
        ...stored.flatMap((i) =>
          (i.tags.length ? i.tags : ['<none>:<none>']).map((tag) => {
            // A name pulled by digest (repo@sha256:…) has no tag, as Docker lists it.
            const at = tag.includes('@') ? tag.indexOf('@') : tag.lastIndexOf(':');
            return {
              name: tag === '<none>:<none>' ? i.id : tag,
              kind: 'oci' as const,
              repository: tag.slice(0, at),
              tag: tag.includes('@') ? '<none>' : tag.slice(at + 1),
              id: i.id,
              createdAt: i.created,
              sizeBytes: i.size,
              layers: i.layers.length,
            };
          }),
        ),
        ...r.listImages(paths).map((i) => ({ ...i, repository: i.name, tag: '', id: '', layers: undefined })),
      ];
      if (f.json) return printJson(rows);
      if (f.quiet) {
        for (const id of new Set(stored.map((i) => i.id.slice(7, 19)))) process.stdout.write(`${id}\n`);
        return;
      }
      printTable(
        ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
        rows.map((i) => [
          i.repository,
          i.tag,
          i.id ? i.id.slice(7, 19) : i.kind,
          i.createdAt ? `${ago(i.createdAt)} ago` : '',
          size(i.sizeBytes),
        ]),
      );
    });
  image
    .command('rm')
    .description('remove images: a tag is untagged, an image is deleted with its last tag (or by ID)')
    .argument('<image...>')
    .action(async (names: string[]) => {
      const paths = r.runnerPaths();
      await eachName(
        names,
        async (name) => {
          if (r.listImages(paths).some((i) => i.name === name)) {
            r.removeImage(
              paths,
              name,
              usersOf(r, paths, (c) => c.image === name && !c.imageId),
            );
            process.stdout.write(`${name}\n`);
            return;
          }
          const lines = r.removeStoredImage(paths, name, (id) => usersOf(r, paths, (c) => c.imageId === id));
          for (const l of lines) process.stdout.write(`${l}\n`);
        },
        false,
      );
    });
}
