/** The multi-call CNI binary: bin/cni/<type> dispatches on the name it was executed as. */
import { basename } from 'node:path';
import { preferPosixSpawn, runPluginMain } from '../core/index.js';
import { builtinPlugins } from './registry.js';

const type = basename(process.argv[1] ?? '').replace(/\.(c?js|mjs|ts)$/, '');
// A process per call: forking it for iptables-restore costs more than the program (core/posix-spawn.ts).
preferPosixSpawn();
void runPluginMain(builtinPlugins, type);
