/** The plugin list and every plugin's config schema, by id, for the build (binaries, precompiled validators). */
export { pluginNames } from '../plugins/list.js';
export { schemas } from '../plugins/schemas.js';
