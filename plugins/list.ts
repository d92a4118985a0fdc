/**
 * The built-in plugins: the one list. The registry is a record keyed by it (the
 * compiler asks for an entry for each), the build makes a binary for each, `ctnet install-cni`
 * installs each, and the agent preloads them.
 */
export const pluginNames = ['bridge', 'host-local', 'loopback', 'portmap'] as const;
export type BuiltinPluginName = (typeof pluginNames)[number];
