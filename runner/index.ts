/** The container runner: images, isolation (through the ctnet-init helper), cgroups, networks, lifecycle. */
export * from './cgroups/index.js';
export * from './containers.js';
export * from './etc-files.js';
export { execFailed, execNotFound } from './helper.js';
export * from './images.js';
export { parsePreserveFds, parseSecurityOpts } from './isolation.js';
export * from './lifecycle.js';
export * from './network.js';
export * from './oci/index.js';
export * from './paths.js';
export * from './ports.js';
export * from './state.js';
export * from './stats.js';
export { withTimings } from './timing.js';
export * from './view.js';
