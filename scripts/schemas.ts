/** Every plugin's config schema, by id, for the build's precompiled validators. */
export { schemas } from '../plugins/schemas.js';
