export * from './args.js';
export * from './invoke.js';
export * from './main.js';
export * from './names.js';
export type * from './plugin.js';
export * from './schema.js';
export * from './skel.js';
export * from './types.js';
export * from './version.js';
