/**
 * Runs the bridge plugin in-process inside a sandbox namespace (test-net/bridge-race.test.ts) to force one
 * interleaving: the old owner's DEL at the point where it removes its masquerade elements, and a new attachment
 * that receives the same address at that point whenever the old owner's address has been released by then. Input
 * on stdin: `{conf, old: {id, netns}, new: {id, netns}}`; prints one JSON result.
 */
import { readFileSync } from 'node:fs';
import { type EnvVars, type Executor, handle, InProcessExecutor } from '../core/index.js';
import { type ElementOp, NftElements } from '../iptables/nft-netlink.js';
import { builtinPlugins } from '../plugins/index.js';
import { refuseRootNetns } from './driver-guard.js';

refuseRootNetns('bridge-race-driver');

interface Attachment {
  id: string;
  netns: string;
}
const input = JSON.parse(readFileSync(0, 'utf8')) as { conf: { name: string }; old: Attachment; new: Attachment };
const stdin = JSON.stringify(input.conf);
const inProcess = new InProcessExecutor(builtinPlugins);
/** The IPAM DEL of the old owner, once the bridge has started it. */
let ipamDel: Promise<unknown> | undefined;
const executor: Executor = {
  invoke(type, env, stdinText) {
    const call = inProcess.invoke(type, env, stdinText);
    if (env.CNI_COMMAND === 'DEL') ipamDel ??= call;
    return call;
  },
};
const bridge = await builtinPlugins.bridge?.();
if (!bridge) throw new Error('no bridge plugin');
const cni = async (command: string, a: Attachment) => {
  const vars: EnvVars = { CNI_COMMAND: command, CNI_CONTAINERID: a.id, CNI_NETNS: a.netns, CNI_IFNAME: 'eth0', CNI_PATH: '' };
  const r = await handle(bridge, vars, stdin, executor);
  const ips = r.exitCode === 0 && r.stdout ? (JSON.parse(r.stdout) as { ips?: { address: string }[] }).ips : undefined;
  return { exitCode: r.exitCode, address: ips?.[0]?.address, ...(r.exitCode !== 0 && { stdout: r.stdout }) };
};

const oldAdd = await cni('ADD', input.old);
const oldComment = `ctnet masq net=${input.conf.name} id=${input.old.id} if=eth0`;
let addressHeld: boolean | undefined;
let newAdd: Awaited<ReturnType<typeof cni>> | undefined;
const apply = NftElements.prototype.apply;
NftElements.prototype.apply = async function (this: NftElements, ops: ElementOp[]) {
  const removesOldMasquerade = ops.some(
    (o) => o.op === 'delete' && o.element.comment === oldComment && o.element.set.startsWith('masq-'),
  );
  if (removesOldMasquerade && addressHeld === undefined) {
    addressHeld = ipamDel === undefined;
    if (ipamDel) {
      await ipamDel.catch(() => undefined);
      newAdd = await cni('ADD', input.new);
    }
  }
  return apply.call(this, ops);
};
const oldDel = await cni('DEL', input.old);
NftElements.prototype.apply = apply;
newAdd ??= await cni('ADD', input.new);

const elements = new NftElements('ctnet');
const state: string[] = [];
for (const set of ['masq-src4', 'masq-local4', 'attachments']) {
  for (const e of (await elements.dump(set)) ?? []) state.push(`${set} ${e.comment}`);
}
process.stdout.write(`${JSON.stringify({ oldAdd, oldDel, newAdd, addressHeld, state })}\n`);
