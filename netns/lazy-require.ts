/**
 * Loads a CommonJS dependency (koffi, netlink) on first use, so importing netns/ costs nothing.
 *
 * In the esbuild bundle the module's own resolution path points at the bundle's directory, which
 * may be a CNI plugin directory far from node_modules; the bundle's prelude adds the checkout's
 * node_modules to the main module's paths, so fall back to resolving from there.
 */
import { createRequire } from 'node:module';

export function lazyRequire(id: string): unknown {
  const local = createRequire(import.meta.url);
  try {
    return local(id);
  } catch (err) {
    const main = local.main ?? (process as { mainModule?: NodeJS.Module }).mainModule;
    if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND' || !main) throw err;
    return main.require(id);
  }
}
