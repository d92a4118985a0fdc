/**
 * Network management, below the runner: the one CNI runtime (libcni's job: run a conflist's chain, cache
 * results), the network store (conflists under the state root, names, subnets, who is attached), `network
 * connect`, the hosts files of containers sharing a network, and isolation between networks.
 * No formatting for people here (that is cli/'s job).
 */

export * from './cni-runtime.js';
export * from './conflist.js';
export * from './connect.js';
export * from './containers.js';
export * from './isolation.js';
export * from './names.js';
export * from './networks.js';
export * from './paths.js';
