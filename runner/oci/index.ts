/** OCI and Docker images: references, the layer and image store, archives, and what a config means for run. */
export * from './archive.js';
export * from './config.js';
export * from './credentials.js';
export * from './platform.js';
export * from './pull.js';
export * from './reference.js';
export * from './store.js';
