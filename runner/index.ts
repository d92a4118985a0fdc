/**
 * The container runner: images, isolation (through the ctnet-init helper), cgroups, networks, lifecycle. A
 * container's lifecycle, one module a step: create (create.ts) → start (start.ts, with the helper's plan from
 * plan.ts) → exit → release (release.ts, also the reconciliation every command runs first) → remove; the commands on
 * an existing container (stop, kill, rm, prune, ps, logs, exec, check) in control.ts; what they all run with in
 * context.ts.
 */
export * from './cgroups/index.js';
export * from './containers.js';
export * from './context.js';
export * from './control.js';
export { type CreateRequest, createContainer, defaultPath, parseNetworkMode, parseVolume } from './create.js';
export * from './etc-files.js';
export { execFailed, execNotFound } from './helper.js';
export * from './images.js';
export { parsePreserveFds, parseSecurityOpts } from './isolation.js';
export * from './network.js';
export * from './oci/index.js';
export * from './paths.js';
export * from './ports.js';
export { finalize, reconcile, release } from './release.js';
export * from './start.js';
export * from './state.js';
export * from './stats.js';
export { withTimings } from './timing.js';
export * from './view.js';
