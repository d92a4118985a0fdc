/**
 * Kubernetes through containerd's CRI on ctnet's plugins: containerd runs in a sandbox host namespace with its
 * root, state, socket and config in the test's temp dir, the CNI bin_dir holding ctnet's plugins and a conflist of
 * bridge + portmap. The test speaks runtime.v1 over gRPC as kubelet does: two pods, one publishing a hostPort, a
 * server in each, then StopPodSandbox twice and RemovePodSandbox, and checks that the port answers, the pods reach
 * each other, and nothing of them is left. Once with the plugins alone, once with `ctnet agent` serving them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import test, { type ExecutionContext } from 'ava';
import { c as createTar } from 'tar';
import { run } from '../core/index.js';
import { startAgent } from './agent-helpers.js';
import { nftBin } from './firewall-fixtures.js';
import { busyboxRootfs } from './runner-helpers.js';
import { cniBinDir, createSandbox, nsRun, randomSuffix, worldLink } from './sandbox.js';

const hostPort = 18080;
const cniResultsDir = '/var/lib/cni/results';
const pauseRef = 'ctt.local/pause:1';
const busyboxRef = 'ctt.local/busybox:1';

type Unary = (req: object, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;
type CriClient = grpc.Client & Record<string, Unary>;

function criClient(socket: string): CriClient {
  const def = protoLoader.loadSync(join(import.meta.dirname, 'cri-api.proto'), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: new (addr: string, creds: grpc.ChannelCredentials) => CriClient } };
  };
  return new pkg.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure());
}

function call<T = Record<string, unknown>>(client: CriClient, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method]?.call(client, req, (err, res) => (err ? reject(new Error(`${method}: ${err.message}`)) : resolve(res as T)));
  });
}

/** One image archive (`docker save` layout) holding busybox and a web root, tagged as both images. */
async function imageArchive(t: ExecutionContext, dir: string): Promise<string> {
  const root = await busyboxRootfs(t);
  mkdirSync(join(root, 'www'));
  writeFileSync(join(root, 'www', 'index.html'), 'hello-from-pod\n');
  const work = join(dir, 'image');
  mkdirSync(join(work, 'l0'), { recursive: true });
  const layer = join(work, 'l0', 'layer.tar');
  await createTar({ cwd: root, file: layer, portable: true }, ['.']);
  const diffId = (await run('sha256sum', [layer])).stdout.split(' ')[0];
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: ['/bin/sleep', '2147483647'], Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
  });
  writeFileSync(join(work, 'config.json'), config);
  writeFileSync(
    join(work, 'manifest.json'),
    JSON.stringify([{ Config: 'config.json', RepoTags: [pauseRef, busyboxRef], Layers: ['l0/layer.tar'] }]),
  );
  const out = join(dir, 'images.tar');
  await createTar({ cwd: work, file: out, portable: true }, ['manifest.json', 'config.json', 'l0']);
  return out;
}

function containerdConfig(dir: string, netDir: string): string {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${dir}/containerd.sock"

[ttrpc]
  address = "${dir}/containerd-ttrpc.sock"

[debug]
  address = "${dir}/containerd-debug.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseRef}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${cniBinDir}"
    conf_dir = "${netDir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`;
}

/** Processes whose command line names `needle` (containerd's shims carry the socket path): ours alone. */
function pidsNaming(needle: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return pids.filter((p) => p !== process.pid);
}

async function unmountUnder(dir: string): Promise<void> {
  const r = await run('findmnt', ['-rn', '-o', 'TARGET'], { allowFailure: true });
  const targets = r.stdout.split('\n').filter((m) => m.startsWith(`${dir}/`));
  for (const m of targets.sort().reverse()) await run('umount', ['-l', m], { allowFailure: true });
}

interface Containerd {
  child: ChildProcess;
  socket: string;
  client: CriClient;
  log(): string;
}

async function startContainerd(t: ExecutionContext, host: string, dir: string, env: Record<string, string>): Promise<Containerd> {
  const socket = join(dir, 'containerd.sock');
  const cfg = join(dir, 'containerd.toml');
  writeFileSync(cfg, containerdConfig(dir, join(dir, 'net.d')));
  let log = '';
  const child = spawn('nsenter', [`--net=/run/netns/${host}`, 'containerd', '--config', cfg], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (b: Buffer) => {
    log += b.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    // Shims outlive containerd: end every process that names this test's socket, then containerd, by pid.
    for (const pid of pidsNaming(socket)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await unmountUnder(dir);
  });
  for (let i = 0; !existsSync(socket); i++) {
    if (child.exitCode !== null || i > 300) throw new Error(`containerd did not start: ${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const client = criClient(socket);
  t.teardown(() => client.close());
  // The socket is served before the CRI plugin has initialised; until then its calls fail.
  for (let i = 0; ; i++) {
    try {
      await call(client, 'Version', { version: 'v1' });
      break;
    } catch (err) {
      if (child.exitCode !== null || i > 300) throw new Error(`containerd's CRI did not come up: ${err}\n${log.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { child, socket, client, log: () => log };
}

interface Pod {
  id: string;
  ip: string;
  netns: string;
}

/** Removes cgroup `parent` with what runc left under it, in every hierarchy (cgroup v1 and the unified tree). */
function removeCgroup(parent: string): void {
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const top = join('/sys/fs/cgroup', hierarchy, parent);
    if (!existsSync(top)) continue;
    const dirs = readdirSync(top, { recursive: true, withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(e.parentPath, e.name));
    for (const d of [...dirs.sort().reverse(), top]) {
      try {
        rmdirSync(d);
      } catch {
        // still holds a process: nothing more we may do
      }
    }
  }
}

async function runPod(cd: Containerd, dir: string, cgroupParent: string, name: string, ports: object[]): Promise<Pod> {
  const logDir = join(dir, 'logs', name);
  mkdirSync(logDir, { recursive: true });
  const config = {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: name,
    log_directory: logDir,
    port_mappings: ports,
    linux: {
      cgroup_parent: cgroupParent,
      security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } },
    },
  };
  const { pod_sandbox_id: id } = await call<{ pod_sandbox_id: string }>(cd.client, 'RunPodSandbox', { config });
  const status = await call<{ status: { network: { ip: string } }; info: Record<string, string> }>(
    cd.client,
    'PodSandboxStatus',
    { pod_sandbox_id: id, verbose: true },
  );
  const info = JSON.parse(status.info.info ?? '{}') as {
    runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
  };
  const netns = info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path ?? '';
  const { container_id } = await call<{ container_id: string }>(cd.client, 'CreateContainer', {
    pod_sandbox_id: id,
    config: {
      metadata: { name: 'web', attempt: 0 },
      image: { image: busyboxRef },
      command: ['/bin/httpd', '-f', '-p', '80', '-h', '/www'],
      log_path: 'web.log',
    },
    sandbox_config: config,
  });
  await call(cd.client, 'StartContainer', { container_id });
  return { id, ip: status.status.network.ip, netns };
}

/** GET / over HTTP from namespace `ns`; the server may need a moment after StartContainer to listen. */
async function fetchFrom(ns: string, url: string): Promise<string> {
  let last = '';
  for (let i = 0; i < 50; i++) {
    const r = await nsRun(ns, 'curl', ['-sS', '--max-time', '2', url], { allowFailure: true });
    if (r.code === 0) return r.stdout;
    last = r.stderr;
    await new Promise((res) => setTimeout(res, 100));
  }
  return `failed: ${last}`;
}

async function rulesNaming(host: string, needles: string[]): Promise<string[]> {
  const xt = (await nsRun(host, 'iptables-save', [], { allowFailure: true })).stdout.split('\n');
  const nft = (await nsRun(host, nftBin, ['list', 'ruleset'], { allowFailure: true })).stdout.split('\n');
  return [...xt, ...nft].filter((l) => needles.some((n) => l.includes(n)));
}

async function vethsOn(host: string, bridge: string): Promise<string[]> {
  const r = await nsRun(host, 'ip', ['-o', 'link', 'show', 'master', bridge], { allowFailure: true });
  return r.stdout.split('\n').filter(Boolean);
}

function leasesOf(dataDir: string, network: string): string[] {
  const dir = join(dataDir, network);
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

async function scenario(t: ExecutionContext, withAgent: boolean): Promise<void> {
  t.timeout(180_000);
  const sb = await createSandbox(t, { world: true });
  const suffix = randomSuffix();
  const network = `ctt-cri-${suffix}`;
  const bridge = `ccri${suffix.slice(0, 6)}`;
  const dataDir = join(sb.dir, 'ipam');
  const runDir = join(sb.dir, 'run');
  const env = { CTNET_RUN_DIR: runDir, CTNET_ROOT: join(sb.dir, 'ctnet') };
  mkdirSync(join(sb.dir, 'net.d'));
  writeFileSync(
    join(sb.dir, 'net.d', '10-ctt.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: network,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.231.7.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  const agent = withAgent ? await startAgent(t, sb.host, sb.dir, [], env) : undefined;

  const archive = await imageArchive(t, sb.dir);
  const cd = await startContainerd(t, sb.host, sb.dir, env);
  const pods: string[] = [];
  const cgroupParent = `/${network}`;
  t.teardown(() => removeCgroup(cgroupParent));
  t.teardown(async () => {
    // On failure the pods go the way kubelet would remove them, before containerd is stopped.
    for (const id of pods) {
      await call(cd.client, 'StopPodSandbox', { pod_sandbox_id: id }).catch(() => undefined);
      await call(cd.client, 'RemovePodSandbox', { pod_sandbox_id: id }).catch(() => undefined);
    }
    // containerd's CNI result cache has a fixed path: remove this test's entries alone.
    if (existsSync(cniResultsDir)) {
      for (const f of readdirSync(cniResultsDir))
        if (f.startsWith(`${network}-`)) rmSync(join(cniResultsDir, f), { force: true });
    }
  });
  const version = await call<{ runtime_api_version: string }>(cd.client, 'Version', { version: 'v1' });
  t.is(version.runtime_api_version, 'v1');
  const imp = await nsRun(
    sb.host,
    'ctr',
    ['--address', cd.socket, '-n', 'k8s.io', 'images', 'import', '--snapshotter', 'native', '--platform', 'linux/amd64', archive],
    { allowFailure: true },
  );
  t.is(imp.code, 0, imp.stderr);

  const web = await runPod(cd, sb.dir, cgroupParent, `web-${suffix}`, [
    { protocol: 'TCP', container_port: 80, host_port: hostPort },
  ]);
  pods.push(web.id);
  const peer = await runPod(cd, sb.dir, cgroupParent, `peer-${suffix}`, []);
  pods.push(peer.id);
  t.regex(web.ip, /^10\.231\.7\.\d+$/, cd.log().slice(-2000));
  t.regex(peer.ip, /^10\.231\.7\.\d+$/);
  t.not(web.ip, peer.ip);
  t.truthy(web.netns.startsWith(join(sb.dir, 'state')), `the pod's namespace is mounted under the state dir: ${web.netns}`);

  const world = sb.world as string;
  t.is(await fetchFrom(world, `http://${worldLink.hostAddr}:${hostPort}/`), 'hello-from-pod\n', 'hostPort from the world');
  t.is(await fetchFrom(sb.host, `http://127.0.0.1:${hostPort}/`), 'hello-from-pod\n', "hostPort from the host's 127.0.0.1");
  t.is(await fetchFrom(sb.host, `http://${web.ip}/`), 'hello-from-pod\n', 'pod IP from the host');
  t.is(await fetchFrom(peer.netns, `http://${web.ip}/`), 'hello-from-pod\n', 'pod IP from the other pod');
  t.is(await fetchFrom(web.netns, `http://${peer.ip}/`), 'hello-from-pod\n', 'and back');

  // What removal must take away is there while the pods run.
  t.is(leasesOf(dataDir, network).length, 2, 'a lease per pod');
  t.is((await vethsOn(sb.host, bridge)).length, 2, 'a veth per pod');
  t.true(
    filesUnder(join(runDir, 'portmap')).some((f) => f.includes(`tcp-${hostPort}`)),
    "the hostPort's claim is in the test's run dir",
  );

  for (const id of [web.id, peer.id]) {
    await call(cd.client, 'StopPodSandbox', { pod_sandbox_id: id });
    await call(cd.client, 'StopPodSandbox', { pod_sandbox_id: id });
    await call(cd.client, 'RemovePodSandbox', { pod_sandbox_id: id });
  }
  pods.length = 0;

  t.deepEqual(leasesOf(dataDir, network), [], 'no lease left');
  t.deepEqual(await vethsOn(sb.host, bridge), [], 'no veth left on the bridge');
  t.deepEqual(await rulesNaming(sb.host, [web.ip, peer.ip, web.id, peer.id, String(hostPort)]), [], 'no rule or element left');
  t.deepEqual(filesUnder(join(runDir, 'portmap')), [], 'no port reservation left');
  t.deepEqual(
    (existsSync(cniResultsDir) ? readdirSync(cniResultsDir) : []).filter((f) => f.startsWith(`${network}-`)),
    [],
    "containerd's result cache holds none of the pods",
  );
  if (agent) {
    const served = agent.entries('CNI call served').map((e) => `${e.type} ${e.command}`);
    for (const c of ['bridge ADD', 'portmap ADD', 'bridge DEL', 'portmap DEL'])
      t.true(served.includes(c), `the agent served ${c}`);
  }
}

test('containerd CRI: hostPort pods on the plugins start, answer and leave nothing', (t) => scenario(t, false));
test('containerd CRI: the same with ctnet agent serving the plugins', (t) => scenario(t, true));
