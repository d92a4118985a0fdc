#!/usr/bin/env node
/**
 * The import rules of docs/architecture.md, checked on every relative import of the source folders: static
 * (`import … from`, `export … from`, `import '…'`) and dynamic (`import('…')`) alike.
 *
 * 1. A folder imports only the folders of the layers below it (`allowed`); nothing imports cli/.
 * 2. Across folders, only a folder's index.ts is imported (no deep imports).
 * 3. A dynamic import() of our own code says why it is lazy: a comment containing "lazy:" on the line itself or
 *    within the ten lines above it (what loading it at once would cost, and who pays).
 * 4. A dynamic import names its module by a string literal (a computed name hides the dependency).
 *
 * Tests (*.test.ts), test-net/, bench/ and scripts/ are outside the layers and not checked.
 * Exit status 1 and one line per finding when a rule is broken.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** What each folder may import, bottom layer first. */
const allowed = {
  core: [],
  netns: ['core'],
  ipam: ['core'],
  iptables: ['core'],
  plugins: ['core', 'netns', 'ipam', 'iptables'],
  network: ['core', 'netns', 'ipam', 'iptables'],
  runner: ['core', 'netns', 'ipam', 'iptables', 'plugins', 'network'],
  debug: ['core', 'netns', 'ipam', 'iptables', 'plugins', 'network', 'runner'],
  node: ['core', 'netns', 'ipam', 'iptables', 'plugins', 'network', 'runner', 'debug'],
  agent: ['core', 'netns', 'ipam', 'iptables', 'plugins', 'network', 'runner'],
  cli: ['core', 'netns', 'ipam', 'iptables', 'plugins', 'network', 'runner', 'debug', 'node', 'agent'],
};

function sourceFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

/** Blanks comments (keeping line breaks) so commented-out code is not read as an import. */
function withoutComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, (m) => m.replace(/[^\n]/g, ' '));
}

const importPattern = /\b(?:from\s*|import\s*)(['"])([^'"]+)\1|\bimport\s*\(\s*([^)]*?)\s*\)/g;

export function checkImports() {
  const problems = [];
  for (const folder of Object.keys(allowed)) {
    let files;
    try {
      files = sourceFiles(join(root, folder));
    } catch {
      continue;
    }
    for (const file of files) {
      const raw = readFileSync(file, 'utf8');
      const lines = raw.split('\n');
      const code = withoutComments(raw);
      const here = relative(root, file);
      for (const m of code.matchAll(importPattern)) {
        const line = code.slice(0, m.index).split('\n').length;
        const dynamic = m[3] !== undefined;
        let spec = m[2];
        if (dynamic) {
          // `typeof import('…')` and `import('…').Type` are types: they load nothing.
          if (/\btypeof\s*$/.test(code.slice(Math.max(0, m.index - 10), m.index))) continue;
          if (/^\.[A-Z]/.test(code.slice(m.index + m[0].length))) continue;
          const literal = /^(['"`])([^'"`$]+)\1$/.exec(m[3]);
          if (!literal) {
            problems.push(`${here}:${line}: import() names its module by an expression`);
            continue;
          }
          spec = literal[2];
        }
        if (!spec.startsWith('.')) continue;
        const target = relative(root, resolve(dirname(file), spec));
        const to = target.split('/')[0];
        if (dynamic) {
          const context = lines.slice(Math.max(0, line - 11), line).join('\n');
          if (!/lazy:/.test(context))
            problems.push(`${here}:${line}: import('${spec}') does not say why it is lazy (a "lazy:" comment)`);
        }
        if (to === folder) continue;
        if (!(to in allowed)) continue;
        if (!allowed[folder].includes(to)) problems.push(`${here}:${line}: ${folder}/ may not import ${to}/ (${spec})`);
        if (!/^[^/]+\/index\.(js|ts)$/.test(target)) problems.push(`${here}:${line}: deep import ${spec}: import ${to}/index.js`);
      }
    }
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const problems = checkImports();
  for (const p of problems) console.error(p);
  if (problems.length) {
    console.error(`${problems.length} import rule(s) broken (docs/architecture.md)`);
    process.exit(1);
  }
}
