/** Every plugin's config schema by plugin name; scripts/build.mjs precompiles them. */
import { bridgeSchema } from './bridge/schema.js';
import { hostLocalSchema } from './host-local/schema.js';
import type { BuiltinPluginName } from './list.js';
import { loopbackSchema } from './loopback/schema.js';
import { portmapSchema } from './portmap/schema.js';

export const schemas: Record<BuiltinPluginName, object> = {
  bridge: bridgeSchema,
  'host-local': hostLocalSchema,
  loopback: loopbackSchema,
  portmap: portmapSchema,
};
