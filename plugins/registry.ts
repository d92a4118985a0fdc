/**
 * The built-in plugins by name: the composition root for the multi-call binary, the agent and in-process
 * execution by the runner.
 */
import type { PluginRegistry } from '../core/index.js';
import type { BuiltinPluginName } from './list.js';

// lazy: every orchestrator call starts a plugin binary and pays for what it evaluates, so a call evaluates only
// the plugin it runs (a portmap or loopback call never evaluates the bridge's netns code or IPAM); the agent and
// the runner preload through these same loaders.
export const builtinPlugins: PluginRegistry = {
  bridge: async () => (await import('./bridge/bridge.js')).bridgePlugin,
  'host-local': async () => (await import('./host-local/host-local.js')).hostLocalPlugin,
  loopback: async () => (await import('./loopback/loopback.js')).loopbackPlugin,
  portmap: async () => (await import('./portmap/portmap.js')).portmapPlugin,
} satisfies Record<BuiltinPluginName, unknown>;
