/**
 * Data gathering for ctnet's network commands and debugger: reading configs, running CNI chains,
 * reading kernel and firewall state. No formatting for people here (that is cli/'s job).
 */

export * from './agent.js';
export * from './cni-runtime.js';
export * from './conflist.js';
export * from './connect.js';
export * from './containers.js';
export * from './doctor.js';
export * from './firewall.js';
export * from './isolation.js';
export * from './kernel.js';
export * from './names.js';
export * from './networks.js';
export * from './paths.js';
export * from './report.js';
export * from './sockets.js';
export * from './topology.js';
export * from './trace.js';
