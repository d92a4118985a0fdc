/** The resident agent: one per host network namespace, serving CNI calls and `ctnet run` (docs/agent.md). */
export type { Caller } from './acceptor.js';
export { cniDeclineReason } from './cni.js';
export * from './protocol.js';
export { environmentMismatch, type RunCall, type RunHandler } from './run.js';
export { type AgentOptions, type RunningAgent, startAgent } from './server.js';
