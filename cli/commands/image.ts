/** `ctnet image import|ls|rm`: root-filesystem images kept under the state root. */
import type { Command } from 'commander';
import { printJson, printTable } from '../output.js';

export function register(program: Command): void {
  const image = program.command('image').description('manage images (root filesystems)');
  image
    .command('import')
    .description('import a root-filesystem tarball (docker export format) as image NAME')
    .argument('<name>')
    .argument('<file>', 'tar file, optionally compressed')
    .action(async (name: string, file: string) => {
      const r = await import('../../runner/index.js');
      const info = await r.importImage(r.runnerPaths(), name, file);
      process.stdout.write(`${info.name}\n`);
    });
  image
    .command('ls')
    .description('list images')
    .option('--json', 'print JSON')
    .action(async (f: { json?: boolean }) => {
      const r = await import('../../runner/index.js');
      const list = r.listImages(r.runnerPaths());
      if (f.json) return printJson(list);
      printTable(
        ['NAME', 'KIND', 'SIZE', 'CREATED', 'ROOTFS'],
        list.map((i) => [i.name, i.kind, i.sizeBytes ? `${(i.sizeBytes / 1e6).toFixed(1)}MB` : '', i.createdAt ?? '', i.rootfs]),
      );
    });
  image
    .command('rm')
    .description('remove imported images')
    .argument('<name...>')
    .action(async (names: string[]) => {
      const r = await import('../../runner/index.js');
      const paths = r.runnerPaths();
      for (const name of names) {
        const users = r
          .listRecords(paths)
          .filter((c) => c.config.image === name)
          .map((c) => c.config.name);
        r.removeImage(paths, name, users);
        process.stdout.write(`${name}\n`);
      }
    });
}
