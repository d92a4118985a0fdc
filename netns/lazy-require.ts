/**
 * Loads a CommonJS dependency (koffi, netlink) on first use, so importing netns/ costs nothing.
 *
 * In the esbuild bundle the module's own resolution path points at the bundle's directory, which
 * may be a CNI plugin directory far from node_modules; the bundle's prelude adds the checkout's
 * node_modules to the main module's paths, so fall back to resolving from there.
 */
import { createRequire } from 'node:module';

function notFound(err: unknown): boolean {
  return (err as { code?: string }).code === 'MODULE_NOT_FOUND';
}

function mainModule(local: NodeJS.Require): NodeJS.Module | undefined {
  return local.main ?? (process as { mainModule?: NodeJS.Module }).mainModule;
}

export function lazyRequire(id: string): unknown {
  const local = createRequire(import.meta.url);
  try {
    return local(id);
  } catch (err) {
    const main = mainModule(local);
    if (!notFound(err) || !main) throw err;
    return main.require(id);
  }
}

/** The file `id` resolves to, by the same rules as lazyRequire. */
export function lazyResolve(id: string): string {
  const local = createRequire(import.meta.url);
  try {
    return local.resolve(id);
  } catch (err) {
    const main = mainModule(local);
    if (!notFound(err) || !main) throw err;
    return local.resolve(id, { paths: main.paths });
  }
}
