/** The multi-call CNI binary: bin/cni/<type> dispatches on the name it was executed as. */
import { basename } from 'node:path';
import { runPluginMain } from '../core/index.js';
import { builtinPlugins } from './registry.js';

const type = basename(process.argv[1] ?? '').replace(/\.(c?js|mjs|ts)$/, '');
void runPluginMain(builtinPlugins, type);
