import { spawn } from 'node:child_process';
import { join } from 'node:path';
import test from 'ava';

const repo = join(import.meta.dirname, '..', '..');

/**
 * runPluginMain in a process of its own, as an orchestrator runs a plugin: a plugin "wide" whose ADD result
 * has `interfaces` entries, so the result can be made larger than a pipe holds.
 */
function runWide(env: Record<string, string>, stdin: string, interfaces: number) {
  const script = `
    import { runPluginMain } from './core/cni/main.ts';
    import { netConfFields } from './core/cni/netconf.ts';
    const plugin = {
      name: 'wide',
      config: netConfFields,
      add: async () => ({
        cniVersion: '1.1.0',
        interfaces: Array.from({ length: ${interfaces} }, (_, i) => ({ name: 'if' + i, mac: '02:00:00:00:00:01' })),
      }),
      del: async () => {},
    };
    await runPluginMain({ wide: async () => plugin }, 'wide');`;
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repo,
      env: { PATH: process.env.PATH, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const addEnv = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_IFNAME: 'eth0',
  CNI_NETNS: '/proc/self/ns/net',
  CNI_NETNS_OVERRIDE: '1',
};
const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'net1', type: 'wide' });

test('a result larger than a pipe holds reaches the reader whole, with exit code 0', async (t) => {
  const r = await runWide(addEnv, conf, 4000);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.length > 128 * 1024);
  const result = JSON.parse(r.stdout) as { interfaces: { name: string }[] };
  t.is(result.interfaces.length, 4000);
  t.is(result.interfaces[3999]?.name, 'if3999');
});

test('an error is CNI error JSON on stdout with exit code 1', async (t) => {
  const r = await runWide(addEnv, '{not json', 1);
  t.is(r.code, 1);
  t.is((JSON.parse(r.stdout) as { code: number }).code, 6);
});

test('VERSION with no stdin writes the version reply', async (t) => {
  const r = await runWide({ CNI_COMMAND: 'VERSION' }, '', 1);
  t.is(r.code, 0, r.stderr);
  t.deepEqual((JSON.parse(r.stdout) as { supportedVersions: string[] }).supportedVersions, [
    '0.3.0',
    '0.3.1',
    '0.4.0',
    '1.0.0',
    '1.1.0',
  ]);
});
