/**
 * The built-in plugins, loaded lazily so a binary call pays only for the plugin it runs.
 * The composition root for the multi-call binary and for in-process execution by the runner.
 */
import type { PluginRegistry } from '../core/index.js';
import type { BuiltinPluginName } from './list.js';

export const builtinPlugins: PluginRegistry = {
  bridge: async () => (await import('./bridge/bridge.js')).bridgePlugin,
  'host-local': async () => (await import('./host-local/host-local.js')).hostLocalPlugin,
  loopback: async () => (await import('./loopback/loopback.js')).loopbackPlugin,
  portmap: async () => (await import('./portmap/portmap.js')).portmapPlugin,
} satisfies Record<BuiltinPluginName, unknown>;
