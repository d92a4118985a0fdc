'use strict';
/**
 * Runs a bundle built by `npm run build` with V8's code cache (Node 20 has no module compile
 * cache). Parsing and compiling a bundle of several hundred KiB costs 15–40 ms, paid by every
 * plugin call and every CLI command; with the cache it is mostly skipped.
 *
 * The cache sits beside the bundle (`<bundle>.<inode>-<mtime>.v8cache`). The build writes one from a light call;
 * V8 compiles functions lazily, so the first successful run of each kind (`learnKey`: plugin and
 * CNI command, or CLI command) rewrites it with what that run compiled on top of what the cache
 * held, and leaves a marker so that happens once. Writes are atomic (temp file + rename) and best
 * effort: a read-only install just keeps the cache it has. A cache V8 rejects (another Node
 * version) or a missing one only costs the compile again.
 */
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

function writeAtomic(file, data) {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never written */
    }
  }
}

module.exports = function loadCached(file, learnKey) {
  // Named after this very file (inode and mtime): V8 checks only a cache's source length, so a
  // cache must never be found by a rebuilt bundle, nor written over by a run of the old one.
  const st = fs.statSync(file);
  const base = `${file}.${st.ino}-${Math.floor(st.mtimeMs)}`;
  const cacheFile = `${base}.v8cache`;
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    /* not built with a cache: compile from source */
  }
  // A shebang line is blanked, not removed, so line numbers in stack traces stay right.
  const source = fs.readFileSync(file, 'utf8').replace(/^#!.*/, '');
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  const marker = learnKey && /^[A-Za-z0-9_.-]+$/.test(learnKey) ? path.join(`${base}.v8learned`, learnKey) : undefined;
  const learn = process.env.CTNET_WRITE_CODE_CACHE === '1' || (marker !== undefined && !fs.existsSync(marker));
  if (learn) {
    process.once('exit', (code) => {
      if (code !== 0) return;
      writeAtomic(cacheFile, script.createCachedData());
      if (marker) {
        try {
          fs.mkdirSync(path.dirname(marker), { recursive: true });
          fs.writeFileSync(marker, '');
        } catch {
          /* read-only install: it tries again next time, harmlessly */
        }
      }
    });
  }
  const mod = new Module(file, null);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(path.dirname(file));
  mod.loaded = true;
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
};
