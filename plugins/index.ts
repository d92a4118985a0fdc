/** The built-in CNI plugins: their names and the registry that loads each on first use. */
export { type BuiltinPluginName, pluginNames } from './list.js';
export { builtinPlugins } from './registry.js';
