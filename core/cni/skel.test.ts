import test from 'ava';
import { CtnetError, ErrorCode } from '../errors.js';
import { extend, int } from './decode.js';
import { InProcessExecutor } from './invoke.js';
import { netConfFields } from './netconf.js';
import type { CniPlugin } from './plugin.js';
import { handle } from './skel.js';

// A plugin that records what skel handed it; skel's own logic is what is under test here.
function recorder() {
  const calls: { command: string; conf: unknown; valid?: unknown; problems?: string[] }[] = [];
  const plugin: CniPlugin = {
    name: 'recorder',
    config: extend(netConfFields, { size: int() }),
    add: async (ctx) => {
      calls.push({ command: 'ADD', conf: ctx.conf });
      return { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }] };
    },
    del: async (ctx) => {
      calls.push({ command: 'DEL', conf: ctx.conf, ...(ctx.configProblems && { problems: ctx.configProblems }) });
    },
    gc: async (ctx) => {
      calls.push({ command: 'GC', conf: ctx.conf, valid: ctx.validAttachments });
    },
  };
  return { plugin, calls, executor: new InProcessExecutor({ recorder: async () => plugin }) };
}

const conf = (extra: object = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'net1', type: 'recorder', ...extra });
const delEnv = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_NETNS: '' };

function parse(stdout: string) {
  return JSON.parse(stdout) as { code: number; msg: string; cniVersion: string };
}

test('VERSION lists every supported version and echoes a supported request', async (t) => {
  const { plugin, executor } = recorder();
  const out = await handle(plugin, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}', executor);
  t.deepEqual(JSON.parse(out.stdout), { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
});

test('errors are JSON on stdout with the code and a non-zero exit', async (t) => {
  const { plugin, executor } = recorder();
  const cases: [Record<string, string>, string, number][] = [
    [delEnv, '{not json', ErrorCode.decode],
    [delEnv, '{"name":"n","type":"recorder"}', ErrorCode.incompatibleVersion],
    [delEnv, conf({ cniVersion: '9.9.9' }), ErrorCode.incompatibleVersion],
    [{ ...delEnv, CNI_CONTAINERID: 'bad;id' }, conf(), ErrorCode.invalidEnv],
    [{ ...delEnv, CNI_IFNAME: 'much-too-long-name' }, conf(), ErrorCode.invalidEnv],
    [{ CNI_COMMAND: 'DEL', CNI_IFNAME: 'eth0' }, conf(), ErrorCode.invalidEnv],
    [{ CNI_COMMAND: 'FROB' }, conf(), ErrorCode.invalidEnv],
    [delEnv, conf({ name: 'bad name' }), ErrorCode.invalidConfig],
    [
      { ...delEnv, CNI_COMMAND: 'ADD', CNI_NETNS: '/proc/self/ns/net', CNI_NETNS_OVERRIDE: '1' },
      conf({ size: 'big' }),
      ErrorCode.invalidConfig,
    ],
    [{ ...delEnv, CNI_COMMAND: 'GC' }, conf({ cniVersion: '1.0.0' }), ErrorCode.incompatibleVersion],
    [{ ...delEnv, CNI_COMMAND: 'ADD', CNI_NETNS: '/nonexistent/ns' }, conf(), ErrorCode.invalidEnv],
    [{ ...delEnv, CNI_COMMAND: 'ADD', CNI_NETNS: '/etc/hostname' }, conf(), ErrorCode.invalidEnv],
  ];
  for (const [env, stdin, code] of cases) {
    const out = await handle(plugin, env, stdin, executor);
    t.is(out.exitCode, 1, stdin);
    t.is(parse(out.stdout).code, code, `${JSON.stringify(env)} ${stdin}`);
  }
});

test('a decoding error names the offending key', async (t) => {
  const { plugin, executor } = recorder();
  const out = await handle(plugin, { ...delEnv, CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0', size: 'big' }), executor);
  t.regex(parse(out.stdout).msg, /"size" must be an integer, not string "big"/);
});

test("ADD on the plugin's own network namespace is refused with code 8", async (t) => {
  const { plugin, executor } = recorder();
  const out = await handle(plugin, { ...delEnv, CNI_COMMAND: 'ADD', CNI_NETNS: '/proc/self/ns/net' }, conf(), executor);
  t.is(parse(out.stdout).code, ErrorCode.invalidNetns);
});

test('DEL with a vanished netns still reaches the plugin', async (t) => {
  const { plugin, calls, executor } = recorder();
  const out = await handle(plugin, { ...delEnv, CNI_NETNS: '/run/netns/gone-long-ago' }, conf(), executor);
  t.is(out.exitCode, 0);
  t.is(calls.length, 1);
});

test('GC hands over the union of cni.dev/valid-attachments and cni.dev/attachments', async (t) => {
  const { plugin, calls, executor } = recorder();
  const a = { containerID: 'a', ifname: 'eth0' };
  const b = { containerID: 'b', ifname: 'eth0' };
  const stdin = conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [a], 'cni.dev/attachments': [b] });
  const out = await handle(plugin, { CNI_COMMAND: 'GC' }, stdin, executor);
  t.is(out.exitCode, 0);
  t.deepEqual(calls[0]?.valid, [a, b]);
});

test('a handler error keeps its code; an unexpected one becomes a plugin error (code 100)', async (t) => {
  const { plugin, executor } = recorder();
  plugin.del = async () => {
    throw new CtnetError(ErrorCode.tryAgainLater, 'busy');
  };
  t.is(parse((await handle(plugin, delEnv, conf(), executor)).stdout).code, 11);
  plugin.del = async () => {
    throw new TypeError('boom');
  };
  const out = parse((await handle(plugin, delEnv, conf(), executor)).stdout);
  t.is(out.code, 100);
  t.is(out.msg, 'boom');
});

test('the error JSON carries the requested cniVersion', async (t) => {
  const { plugin, executor } = recorder();
  const out = await handle(plugin, { ...delEnv, CNI_CONTAINERID: 'x y' }, conf({ cniVersion: '0.4.0' }), executor);
  t.is(parse(out.stdout).cniVersion, '0.4.0');
});

test('without CNI_COMMAND the plugin prints an about line and exits 0', async (t) => {
  const { plugin, executor } = recorder();
  const out = await handle(plugin, {}, '', executor);
  t.is(out.exitCode, 0);
  t.regex(out.stderr ?? '', /supports CNI/);
});

test('keys match the declaration case-insensitively, null is unset, unknown keys are kept', async (t) => {
  const { plugin, calls, executor } = recorder();
  const stdin = JSON.stringify({ CNIVersion: '1.0.0', Name: 'net1', type: 'recorder', SIZE: 3, dns: null, other: { a: 1 } });
  const out = await handle(plugin, delEnv, stdin, executor);
  t.is(out.exitCode, 0, out.stdout);
  t.deepEqual(calls[0]?.conf, { cniVersion: '1.0.0', name: 'net1', type: 'recorder', size: 3, other: { a: 1 } });
});

test('DEL with a config ADD refuses still runs, on what decodes, and is told why', async (t) => {
  const { plugin, calls, executor } = recorder();
  const out = await handle(plugin, delEnv, conf({ size: 'big', dns: { domain: 'x' } }), executor);
  t.is(out.exitCode, 0, out.stdout);
  t.is(calls[0]?.command, 'DEL');
  t.like(calls[0]?.conf as object, { name: 'net1', dns: { domain: 'x' } });
  t.false('size' in ((calls[0]?.conf ?? {}) as object));
  t.regex(calls[0]?.problems?.[0] ?? '', /"size" must be an integer/);
});
