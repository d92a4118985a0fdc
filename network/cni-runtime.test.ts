import test from 'ava';
import type { Executor, InvokeResponse } from '../core/index.js';
import { CniRuntime, cleanupFailed } from './cni-runtime.js';
import { parseNetworkConfig } from './conflist.js';

interface Call {
  type: string;
  command: string;
  conf: Record<string, unknown>;
  env: Record<string, string | undefined>;
}

/** Records every call; `fail` makes one type's ADD fail with a CNI error. */
function recorder(fail?: string): { executor: Executor; calls: Call[] } {
  const calls: Call[] = [];
  const executor: Executor = {
    async invoke(type, env, stdin): Promise<InvokeResponse> {
      const conf = JSON.parse(stdin) as Record<string, unknown>;
      calls.push({ type, command: env.CNI_COMMAND ?? '', conf, env: { ...env } });
      if (env.CNI_COMMAND === 'ADD' && type === fail)
        return { exitCode: 1, stdout: JSON.stringify({ cniVersion: '1.0.0', code: 101, msg: 'port 8080 is taken' }) };
      if (env.CNI_COMMAND !== 'ADD') return { exitCode: 0, stdout: '' };
      const prev = (conf.prevResult ?? { cniVersion: '1.0.0' }) as Record<string, unknown>;
      const result =
        type === 'bridge'
          ? {
              cniVersion: '1.0.0',
              interfaces: [{ name: 'eth0', sandbox: env.CNI_NETNS }],
              ips: [{ address: '10.90.0.2/24', gateway: '10.90.0.1', interface: 0 }],
            }
          : prev;
      return { exitCode: 0, stdout: JSON.stringify(result) };
    },
  };
  return { executor, calls };
}

const raw = JSON.stringify({
  cniVersion: '1.0.0',
  name: 'ctnet',
  plugins: [
    { type: 'bridge', bridge: 'ctnet0', ipam: { type: 'host-local', ranges: [[{ subnet: '10.90.0.0/24' }]] } },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
});
const list = { list: parseNetworkConfig(raw, 'test'), file: 'test', raw };
/** The runtime as the runner uses it: results kept by the caller, so the cache directory is never written. */
const runtime = (executor: Executor, cniPath: string[] = []) => new CniRuntime(executor, '/nonexistent/cache', cniPath, {});
const at = {
  containerId: 'c0ffee',
  netns: '/run/ctnet/netns/c0ffee',
  ifname: 'eth0',
  capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
};

test('ADD runs the list in order, chaining prevResult; only portmap gets the portMappings capability', async (t) => {
  const { executor, calls } = recorder();
  const result = await runtime(executor, ['/bin/cni']).addList(list, at, { undo: true });
  t.deepEqual(
    calls.map((c) => `${c.type} ${c.command}`),
    ['bridge ADD', 'portmap ADD'],
  );
  t.is(calls[0]?.conf.prevResult, undefined);
  t.deepEqual((calls[1]?.conf.prevResult as { ips?: unknown[] } | undefined)?.ips, [
    { address: '10.90.0.2/24', gateway: '10.90.0.1', interface: 0 },
  ]);
  t.is(calls[0]?.conf.runtimeConfig, undefined);
  t.deepEqual(calls[1]?.conf.runtimeConfig, { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
  t.is(calls[0]?.conf.name, 'ctnet');
  t.is(calls[0]?.env.CNI_NETNS, at.netns);
  t.is(calls[0]?.env.CNI_CONTAINERID, 'c0ffee');
  t.is(calls[0]?.env.CNI_PATH, '/bin/cni');
  t.is((result.ips as { address: string }[])[0]?.address, '10.90.0.2/24');
});

test('a failed ADD is followed by DEL of the whole list in reverse, and the ADD error is what surfaces', async (t) => {
  const { executor, calls } = recorder('portmap');
  const err = (await t.throwsAsync(runtime(executor, ['/bin/cni']).addList(list, at, { undo: true }))) as {
    code?: number;
    message: string;
  };
  t.is(err.code, 101);
  t.regex(err.message, /port 8080 is taken/);
  t.deepEqual(
    calls.map((c) => `${c.type} ${c.command}`),
    ['bridge ADD', 'portmap ADD', 'portmap DEL', 'bridge DEL'],
  );
  // The DEL carries what the chain produced so far, and it worked: no DEL is owed.
  t.truthy(calls[2]?.conf.prevResult);
  t.false(cleanupFailed(err));
});

test('DEL runs in reverse with the stored final result, goes on past failures and reports them all', async (t) => {
  const calls: string[] = [];
  const executor: Executor = {
    async invoke(type, env, stdin) {
      calls.push(`${type} ${env.CNI_COMMAND} ${JSON.parse(stdin).prevResult ? 'prev' : 'noprev'}`);
      return type === 'portmap' ? { exitCode: 1, stdout: '{"code":11,"msg":"iptables is locked"}' } : { exitCode: 0, stdout: '' };
    },
  };
  const stored = { cniVersion: '1.0.0', ips: [{ address: '10.90.0.2/24' }] };
  const err = (await t.throwsAsync(runtime(executor).delList(list, at, stored))) as Error;
  t.deepEqual(calls, ['portmap DEL prev', 'bridge DEL prev']);
  t.regex(err.message, /iptables is locked/);
  calls.length = 0;
  await t.throwsAsync(runtime(executor).delList(list, { ...at, netns: '' }, undefined));
  t.deepEqual(calls, ['portmap DEL noprev', 'bridge DEL noprev']);
});

test('CHECK runs in order with the stored result', async (t) => {
  const { executor, calls } = recorder();
  await runtime(executor).checkList(list, at, { cniVersion: '1.0.0', ips: [{ address: '10.90.0.2/24' }] });
  t.deepEqual(
    calls.map((c) => `${c.type} ${c.command} ${c.conf.prevResult ? 'prev' : ''}`),
    ['bridge CHECK prev', 'portmap CHECK prev'],
  );
});
