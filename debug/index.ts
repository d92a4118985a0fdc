/**
 * The debugger (`ctnet debug …`, `ctnet network inspect`), above the runner: reads containers, kernel,
 * firewall and lease state and explains it; never decides. No formatting for people here (that is cli/'s job).
 */

export * from './agent.js';
export * from './doctor.js';
export * from './firewall.js';
export * from './kernel.js';
export * from './report.js';
export * from './sockets.js';
export * from './topology.js';
export * from './trace.js';
