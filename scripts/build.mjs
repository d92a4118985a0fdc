#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
/**
 * Build: bundles the CNI multi-call binary and the CLI with esbuild (one file each, so startup
 * reads one file instead of hundreds).
 *
 * Native and heavy modules (netlink, koffi, pino) stay in node_modules;
 * the bundle's prelude adds this checkout's node_modules to the resolution path, so a copy of
 * bin/cni/<plugin> placed in any CNI plugin directory still finds them.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const require = createRequire(import.meta.url);
const external = ['netlink', 'koffi', 'pino', 'etcd3'];

function prelude(marker) {
  const modules = JSON.stringify(join(root, 'node_modules'));
  return ['#!/usr/bin/env node', `// ${marker}`, `module.paths.unshift(${modules});`].join('\n');
}

/** Bundles `entry`; the file is replaced atomically, so a plugin called during a rebuild never runs half of it. */
async function bundle(entry, outfile, banner, define = {}) {
  const result = await build({
    entryPoints: [join(root, entry)],
    outfile,
    write: false,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external,
    banner: { js: banner },
    // import.meta.url is used only to create `require`; in CJS the module's own require works.
    define: { 'import.meta.url': '__ctnet_import_meta_url', ...define },
    inject: [join(root, 'scripts', 'import-meta-url.js')],
    logLevel: 'warning',
    legalComments: 'none',
    // Whitespace and syntax only: a third less source to read and to key the code cache on at every start
    // (measured: ~4% of a bridge + portmap chain's CPU). Names stay, so stack traces still name functions.
    minifyWhitespace: true,
    minifySyntax: true,
  });
  // The bundles run through vm.Script (bin/load-cached.cjs), which has no dynamic import: a
  // lazily imported Node built-in stays import() in the bundle and fails only when reached.
  const left = result.outputFiles[0].text.match(/\bimport\((["'])[^"']+\1\)/g);
  if (left) throw new Error(`${entry}: dynamic import of ${[...new Set(left)].join(', ')} (import Node built-ins statically)`);
  const tmp = `${outfile}.tmp-${process.pid}`;
  writeFileSync(tmp, result.outputFiles[0].contents);
  renameSync(tmp, outfile);
}

/** The plugin list (plugins/list.ts), read through esbuild: one binary per entry. */
async function readPluginNames() {
  const tmp = join(dist, 'plugin-list.cjs');
  await build({
    entryPoints: [join(root, 'plugins', 'list.ts')],
    outfile: tmp,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    logLevel: 'warning',
  });
  const { pluginNames } = require(tmp);
  rmSync(tmp);
  return pluginNames;
}

mkdirSync(dist, { recursive: true });
const pluginNames = await readPluginNames();
const cniBundle = join(dist, 'cni.cjs');
// No shebang: the plugin loaders (below) compile this file themselves, with V8's code cache.
await bundle('plugins/cni-main.ts', cniBundle, '');
// The agent's socket: a new name per build, so clients of one build never reach an agent running
// another build's code (agent/ctnet-cni-shim.c, agent/ctnet-front.c).
const agentSocket = `ctnet-agent-${randomBytes(6).toString('hex')}`;
await bundle('cli/main.ts', join(dist, 'ctnet.cjs'), prelude('ctnet-cli'), {
  __CTNET_AGENT_SOCKET__: JSON.stringify(agentSocket),
});

/**
 * The Node plugins, bin/cni-node/<type>: a few lines that run dist/cni.cjs through
 * bin/load-cached.cjs (V8 code cache). NODE_EXTRA_CA_CERTS is dropped: plugins never speak TLS,
 * and Node parses that file at every start (~70 ms where it names the system bundle), which every
 * orchestrator call would pay.
 */
function pluginLoader() {
  return [
    '#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node',
    '// ctnet-cni-multicall',
    `require(${JSON.stringify(join(root, 'bin', 'load-cached.cjs'))})(${JSON.stringify(cniBundle)}, \`\${require('path').basename(process.argv[1])}-\${process.env.CNI_COMMAND}\`);`,
    '',
  ].join('\n');
}

/** Writes `name` in `dir` through a temporary file and a rename: a plugin never runs half a file. */
function replaceFile(dir, name, write) {
  const target = join(dir, name);
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  write(tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, target);
}

const nodePluginDir = join(root, 'bin', 'cni-node');
mkdirSync(nodePluginDir, { recursive: true });
// The loaders are CommonJS scripts without an extension, inside a "type": "module" package.
writeFileSync(join(nodePluginDir, 'package.json'), '{ "type": "commonjs" }\n');
for (const name of pluginNames) replaceFile(nodePluginDir, name, (tmp) => writeFileSync(tmp, pluginLoader()));

/** The agent's two C clients share core/c/ctnet-wire.h. */
const wireInclude = ['-I', join(root, 'core', 'c')];

/**
 * The executables orchestrators run, bin/cni/<type>: the C shim (agent/ctnet-cni-shim.c)
 * that hands the call to `ctnet agent` when one serves the caller's network namespace and
 * otherwise execs bin/cni-node/<type>. Without a C compiler the Node plugins themselves go there.
 * The marker at the end lets the runner recognise its own plugins (core/cni/invoke.ts isOurs).
 */
const shim = await (async () => {
  const { execFileSync } = await import('node:child_process');
  const out = join(dist, 'ctnet-cni-shim');
  const defines = [`-DCTNET_NODE_DIR=${JSON.stringify(nodePluginDir)}`, `-DCTNET_SOCKET=${JSON.stringify(agentSocket)}`];
  const source = join(root, 'agent', 'ctnet-cni-shim.c');
  const flags = ['-O2', '-Wall', '-Wextra', ...defines, ...wireInclude, '-o', out, source];
  try {
    try {
      execFileSync('gcc', ['-static', ...flags], { stdio: 'inherit' });
    } catch {
      execFileSync('gcc', flags, { stdio: 'inherit' }); // no static libc installed: a dynamic build works too
    }
  } catch {
    console.warn('no C compiler: bin/cni/* are the Node plugins themselves (no agent support)');
    return undefined;
  }
  return Buffer.concat([readFileSync(out), Buffer.from('\n// ctnet-cni-multicall\n')]);
})();
mkdirSync(join(root, 'bin', 'cni'), { recursive: true });
for (const name of pluginNames) {
  replaceFile(join(root, 'bin', 'cni'), name, (tmp) => writeFileSync(tmp, shim ?? pluginLoader()));
}
chmodSync(join(root, 'bin', 'ctnet-node'), 0o755);
/**
 * The `ctnet` command, bin/ctnet: the C front (agent/ctnet-front.c) that hands `run` to the
 * agent (`ctnet agent`) when one serves the caller and otherwise execs the Node CLI,
 * bin/ctnet-node. Without a C compiler, bin/ctnet is the Node CLI itself.
 */
{
  const { execFileSync } = await import('node:child_process');
  const out = join(dist, 'ctnet-front');
  const flags = ['-O2', '-Wall', '-Wextra', `-DCTNET_AGENT_SOCKET=${JSON.stringify(agentSocket)}`, ...wireInclude, '-o', out];
  const source = join(root, 'agent', 'ctnet-front.c');
  let front;
  try {
    try {
      execFileSync('gcc', ['-static', ...flags, source], { stdio: 'inherit' });
    } catch {
      execFileSync('gcc', [...flags, source], { stdio: 'inherit' }); // no static libc installed: a dynamic build works too
    }
    front = readFileSync(out);
  } catch {
    console.warn('no C compiler: bin/ctnet is the Node CLI itself (no agent support)');
    front = readFileSync(join(root, 'bin', 'ctnet-node'));
  }
  replaceFile(join(root, 'bin'), 'ctnet', (tmp) => writeFileSync(tmp, front));
}
{
  // The first cache holds what one light call compiles; real calls add to it (bin/load-cached.cjs).
  const { execFileSync } = await import('node:child_process');
  const env = { PATH: process.env.PATH, CTNET_WRITE_CODE_CACHE: '1' };
  // Caches of earlier builds (bin/load-cached.cjs names them after the bundle file they belong to).
  for (const entry of readdirSync(dist)) {
    if (/\.v8(cache|learned)$/.test(entry)) rmSync(join(dist, entry), { recursive: true, force: true });
  }
  execFileSync(join(root, 'bin', 'cni', 'bridge'), {
    input: '{"cniVersion":"1.0.0"}',
    env: { ...env, CNI_COMMAND: 'VERSION' },
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  execFileSync(join(root, 'bin', 'ctnet'), ['--help'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
}
const size = readFileSync(cniBundle).length;
const info = { cniBundleBytes: size, plugins: pluginNames, agentSocket: shim ? `@${agentSocket}` : null };
writeFileSync(join(dist, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
console.log(`built dist/cni.cjs (${Math.round(size / 1024)} KiB), bin/cni/{${pluginNames.join(',')}}, dist/ctnet.cjs`);

// ---- runner helper (owned by runner/): ctnet-init, a small C program that sets up a container's
// namespaces and mounts (Node cannot unshare mount/pid namespaces itself), with libseccomp for the
// seccomp filter. Static, so its exec skips the dynamic loader; written beside bin/ctnet, where runner/paths.ts looks for it.
{
  const { execFileSync } = await import('node:child_process');
  const out = join(root, 'bin', 'ctnet-init');
  const tmp = `${out}.tmp-${process.pid}`;
  const sources = ['ctnet-init.c', 'isolation.c', 'tty.c'].map((f) => join(root, 'runner', 'helper', f));
  const flags = ['-O2', '-Wall', '-Wextra', '-o', tmp, ...sources, '-lseccomp'];
  try {
    execFileSync('gcc', ['-static', ...flags], { stdio: 'inherit' });
  } catch {
    execFileSync('gcc', flags, { stdio: 'inherit' }); // no static libc installed: a dynamic build works too
  }
  renameSync(tmp, out);
  console.log('built bin/ctnet-init');
}
