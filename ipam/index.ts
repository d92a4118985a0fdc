/** IPAM: host-local address management in the reference plugin's on-disk format. Imports only core. */
export * from './allocator.js';
export * from './config.js';
export * from './flock.js';
export * from './lease-files.js';
export * from './leases.js';
export * from './requested.js';
export * from './resolv-conf.js';
export * from './store.js';
