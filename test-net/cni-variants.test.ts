/**
 * The shapes runtimes really send, against the reference plugins and ours side by side (cni-table.ts): every
 * variant the reference accepts, ours accepts too and does the same (same result, same addresses in the
 * container, same port forwards), and DEL then leaves nothing of ours behind. Where the variants come from:
 * - containerd 1.6 (go-cni): portMappings as {HostPort, ContainerPort, Protocol, HostIP} (Go field names, no JSON
 *   tags), HostIP "" when unset; CNI_ARGS IgnoreUnknown=1 with K8S_POD_NAMESPACE, K8S_POD_NAME,
 *   K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID; extra capabilities such as io.kubernetes.cri.pod-annotations;
 * - Podman (CNI backend) and CRI-O (ocicni): portMappings with JSON tags (hostPort, containerPort, protocol,
 *   hostIP omitted when empty), runtimeConfig.ips and runtimeConfig.mac (capabilities ips, mac), CNI_ARGS
 *   IgnoreUnknown=1;K8S_POD_…; IP= in CNI_ARGS from older Podman;
 * - nerdctl: go-cni like containerd, plus its own CNI_ARGS keys with IgnoreUnknown;
 * - the reference's own decoding: any key case (CNIVersion, IPAM, Subnet, Dst …), null for unset, unknown keys.
 */
import test from 'ava';
import { type CallSpec, callPlugin, fill, type Outcome, runTable, stateDiff, type World, worldState } from './cni-table.js';
import { sh } from './sandbox.js';

type Plugin = 'bridge' | 'host-local' | 'portmap';

interface Variant {
  name: string;
  plugin: Plugin;
  conf: Record<string, unknown>;
  args?: string;
  /** The addresses are requested, so they must be equal, not just in the same subnet. */
  exact?: boolean;
}

const net = 'k8snet';
const ipam = {
  type: 'host-local',
  dataDir: '{dir}/ipam',
  ranges: [[{ subnet: '10.77.0.0/24' }]],
  routes: [{ dst: '0.0.0.0/0' }],
};
const bridge = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: net,
  type: 'bridge',
  bridge: 'ctvbr0',
  isGateway: true,
  ipMasq: true,
  hairpinMode: true,
  ipam,
  ...extra,
});
const hostLocal = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: net,
  type: 'host-local',
  ipam,
  ...extra,
});

/** The address portmap publishes: on a bridge of the world's host, so the host has a route to it. */
const podIp = '10.78.0.5';
const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'ctvbr1' }, { name: 'veth1234' }, { name: '{ifname}', sandbox: '{ns}' }],
  ips: [{ address: `${podIp}/24`, gateway: '10.78.0.1', interface: 2 }],
};
const portmap = (mappings: unknown, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: net,
  type: 'portmap',
  capabilities: { portMappings: true },
  stateDir: '{dir}/portmap',
  runtimeConfig: { portMappings: mappings },
  prevResult,
  ...extra,
});
const k8sArgs =
  'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID=1b4e28ba';

const variants: Variant[] = [
  // containerd / nerdctl (go-cni)
  {
    name: 'containerd portMappings (Go field names)',
    plugin: 'portmap',
    conf: portmap([{ HostPort: 8080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }]),
  },
  {
    name: 'containerd portMappings, udp and a host address',
    plugin: 'portmap',
    conf: portmap([{ HostPort: 5353, ContainerPort: 53, Protocol: 'udp', HostIP: '127.0.0.1' }]),
  },
  {
    name: 'containerd runtimeConfig with pod annotations and bandwidth beside the mappings',
    plugin: 'portmap',
    conf: portmap([{ HostPort: 8081, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }], {
      capabilities: { portMappings: true, bandwidth: true, 'io.kubernetes.cri.pod-annotations': true },
      runtimeConfig: {
        portMappings: [{ HostPort: 8081, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }],
        bandwidth: { IngressRate: 1000, IngressBurst: 100, EgressRate: 1000, EgressBurst: 100 },
        'io.kubernetes.cri.pod-annotations': { 'a.b/c': 'd' },
      },
    }),
  },
  { name: 'containerd bridge with K8S_POD_* CNI_ARGS', plugin: 'bridge', conf: bridge(), args: k8sArgs },
  { name: 'containerd conflist with cniVersion 0.4.0', plugin: 'bridge', conf: bridge({ cniVersion: '0.4.0' }), args: k8sArgs },
  {
    name: 'containerd conflist with cniVersion 0.3.1',
    plugin: 'bridge',
    conf: bridge({ cniVersion: '0.3.1', promiscMode: true, hairpinMode: false }),
  },
  // Podman, CRI-O
  {
    name: 'Podman/CRI-O portMappings (JSON tags, hostIP omitted)',
    plugin: 'portmap',
    conf: portmap([{ hostPort: 8082, containerPort: 80, protocol: 'tcp' }]),
  },
  {
    name: 'portMappings with protocol in capitals',
    plugin: 'portmap',
    conf: portmap([{ hostPort: 8083, containerPort: 80, protocol: 'TCP' }]),
  },
  {
    name: 'portMappings with hostIP null',
    plugin: 'portmap',
    conf: portmap([{ hostPort: 8084, containerPort: 80, protocol: 'tcp', hostIP: null }]),
  },
  // The reference has no default protocol (it runs iptables with an empty -p and fails): ours defaults to tcp.
  { name: 'portMappings without protocol', plugin: 'portmap', conf: portmap([{ hostPort: 8089, containerPort: 80 }]) },
  { name: 'portMappings null: nothing to publish', plugin: 'portmap', conf: portmap(null) },
  { name: 'runtimeConfig null: nothing to publish', plugin: 'portmap', conf: portmap([], { runtimeConfig: null }) },
  {
    name: 'RuntimeConfig and PortMappings capitalised',
    plugin: 'portmap',
    conf: {
      ...portmap([]),
      runtimeConfig: undefined,
      RuntimeConfig: { PortMappings: [{ hostport: 8085, containerport: 80, PROTOCOL: 'tcp' }] },
    },
  },
  {
    name: 'one mapping key given twice: the last wins',
    plugin: 'portmap',
    conf: portmap([{ hostPort: 1, HostPort: 8086, containerPort: 80, protocol: 'tcp' }]),
  },
  {
    name: 'prevResult with capitalised keys',
    plugin: 'portmap',
    conf: portmap([{ hostPort: 8087, containerPort: 80, protocol: 'tcp' }], {
      prevResult: {
        CNIVersion: '1.0.0',
        Interfaces: [{ Name: 'ctvbr1' }, { Name: 'veth1234' }, { Name: '{ifname}', Sandbox: '{ns}' }],
        IPs: [{ Address: `${podIp}/24`, Gateway: '10.78.0.1', Interface: 2 }],
      },
    }),
  },
  {
    name: 'portmap options null',
    plugin: 'portmap',
    conf: portmap([{ hostPort: 8088, containerPort: 80, protocol: 'tcp' }], {
      snat: null,
      markMasqBit: null,
      conditionsV4: null,
      externalSetMarkChain: null,
    }),
  },
  {
    name: 'Podman bridge with IgnoreUnknown and K8S_POD_*',
    plugin: 'bridge',
    conf: bridge({ bridge: 'ctvbr0', isGateway: true }),
    args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=pod;K8S_POD_NAME=c1;K8S_POD_INFRA_CONTAINER_ID={id}',
  },
  {
    name: 'Podman --ip: runtimeConfig.ips',
    plugin: 'bridge',
    conf: bridge({ capabilities: { ips: true }, runtimeConfig: { ips: ['10.77.0.50/24'] } }),
    exact: true,
  },
  {
    name: 'Podman --mac-address: runtimeConfig.mac',
    plugin: 'bridge',
    conf: bridge({ capabilities: { mac: true }, runtimeConfig: { mac: '02:42:0a:4d:00:33' } }),
  },
  {
    name: 'older Podman: IP= in CNI_ARGS',
    plugin: 'host-local',
    conf: hostLocal(),
    args: 'IgnoreUnknown=1;IP=10.77.0.60',
    exact: true,
  },
  { name: 'IgnoreUnknown=true', plugin: 'host-local', conf: hostLocal(), args: 'IgnoreUnknown=true;K8S_POD_NAME=x' },
  {
    name: 'args.cni.ips from the conflist',
    plugin: 'host-local',
    conf: hostLocal({ args: { cni: { ips: ['10.77.0.70'] } } }),
    exact: true,
  },
  {
    name: 'runtimeConfig IPs capitalised',
    plugin: 'host-local',
    conf: hostLocal({ RuntimeConfig: { IPs: ['10.77.0.80'] } }),
    exact: true,
  },
  {
    name: 'runtimeConfig.ipRanges with Go field names',
    plugin: 'host-local',
    conf: hostLocal({
      runtimeConfig: { ipRanges: [[{ Subnet: '10.79.0.0/24', RangeStart: '10.79.0.100', Gateway: '10.79.0.1' }]] },
    }),
  },
  // The reference's decoding rules
  {
    name: 'top-level keys in another case',
    plugin: 'bridge',
    conf: {
      CNIVersion: '1.0.0',
      Name: net,
      Type: 'bridge',
      Bridge: 'ctvbr0',
      IsGateway: true,
      IPMasq: true,
      MTU: 1400,
      IPAM: ipam,
    },
  },
  {
    name: 'ipam keys in another case',
    plugin: 'bridge',
    conf: bridge({
      ipam: {
        Type: 'host-local',
        DataDir: '{dir}/ipam',
        Ranges: [[{ Subnet: '10.77.0.0/24', Gateway: '10.77.0.1' }]],
        Routes: [{ Dst: '0.0.0.0/0' }],
      },
    }),
  },
  {
    name: 'null for unset options',
    plugin: 'bridge',
    conf: bridge({
      mtu: null,
      vlan: null,
      isDefaultGateway: null,
      promiscMode: null,
      dns: null,
      args: null,
      runtimeConfig: null,
      vlanTrunk: null,
    }),
  },
  {
    name: 'unknown keys at every level',
    plugin: 'bridge',
    conf: bridge({
      Documentation: '/usr/share/doc',
      x: { y: 1 },
      ipam: { ...ipam, comment: 'x', ranges: [[{ subnet: '10.77.0.0/24', note: 1 }]] },
    }),
  },
  { name: 'args.cni.mac, keys capitalised', plugin: 'bridge', conf: bridge({ Args: { CNI: { MAC: '02:42:0a:4d:00:44' } } }) },
  {
    name: 'legacy single range at the top of ipam',
    plugin: 'bridge',
    conf: bridge({ ipam: { type: 'host-local', dataDir: '{dir}/ipam', subnet: '10.77.0.0/24', gateway: '10.77.0.1' } }),
  },
  {
    name: 'dns section',
    plugin: 'bridge',
    conf: bridge({ dns: { nameservers: ['10.77.0.1'], search: ['svc.cluster.local'], options: ['ndots:5'] } }),
  },
  { name: 'runtimeConfig.mac empty: none requested', plugin: 'bridge', conf: bridge({ runtimeConfig: { mac: '' } }) },
];

interface Seen {
  add: Outcome;
  del: Outcome;
  summary: unknown;
  leftovers: string[];
}

/** What must be the same between the implementations: the result's meaning, the container's addresses, the forwards. */
async function summarise(w: World, v: Variant, ifname: string, add: Outcome): Promise<unknown> {
  const r = (add.json ?? {}) as Record<string, { [k: string]: unknown }[] | undefined>;
  const addr = (a: unknown) => (v.exact ? String(a) : String(a).replace(/\.\d+\//, '.x/'));
  const ips = (r.ips ?? []).map((ip) => `${addr(ip.address)} gw ${ip.gateway ?? ''}`).sort();
  const routes = (r.routes ?? []).map((x) => `${x.dst} ${x.gw ?? ''}`).sort();
  const ifaces = (r.interfaces ?? []).map((i) => String(i.name)).filter((n) => !n.startsWith('veth'));
  const mac = (r.interfaces ?? []).find((i) => i.name === ifname)?.mac;
  const inside =
    v.plugin === 'bridge'
      ? (await sh('ip', ['-n', w.container, '-o', '-4', 'addr', 'show', 'dev', ifname])).stdout.match(/inet \S+/g)?.map(addr)
      : [];
  const forwards =
    v.plugin === 'portmap'
      ? (await sh('nsenter', [`--net=/run/netns/${w.host}`, 'iptables-save', '-t', 'nat'])).stdout
          .split('\n')
          .filter((l) => / -j DNAT /.test(l))
          .map(
            (l) =>
              `${l.match(/-p (\w+)/)?.[1]} ${l.match(/-d (\S+)/)?.[1] ?? '*'}:${l.match(/--dport (\d+)/)?.[1]} -> ${l.match(/--to-destination (\S+)/)?.[1]}`,
          )
          .sort()
      : [];
  const wantsMac = /mac/i.test(JSON.stringify(v.conf)) && !/"mac":""/.test(JSON.stringify(v.conf));
  return { cniVersion: r.cniVersion, ips, routes, ifaces, inside, forwards, ...(wantsMac && { mac }), dns: r.dns ?? {} };
}

/**
 * A route to the pod address of the portmap variants, as the bridge would give; then one ADD and DEL of each
 * plugin, so the network's own state (the bridge, base chains made on first use) is there before the cases.
 */
async function prepare(w: World): Promise<void> {
  await sh('ip', ['-n', w.host, 'link', 'add', 'ctvbr1', 'type', 'bridge']);
  await sh('ip', ['-n', w.host, 'link', 'set', 'ctvbr1', 'addrgenmode', 'none']);
  await sh('ip', ['-n', w.host, 'addr', 'add', '10.78.0.1/24', 'dev', 'ctvbr1']);
  await sh('ip', ['-n', w.host, 'link', 'set', 'ctvbr1', 'up']);
  const warm = { containerId: 'warmup', ifname: 'ewarm' };
  for (const [plugin, conf] of [
    ['portmap', portmap([{ hostPort: 9999, containerPort: 80, protocol: 'udp', hostIP: '127.0.0.1' }])],
    ['bridge', bridge()],
  ] as const) {
    const stdin = JSON.stringify(fill(conf, w, { id: 'warmup', ifname: 'ewarm' }));
    for (const command of ['ADD', 'DEL']) await callPlugin(w, plugin, { ...warm, command }, stdin);
  }
}

test('every variant the reference accepts, ours accepts and does the same; DEL leaves nothing', async (t) => {
  // About a minute on an idle machine; much more when the machine is shared.
  t.timeout(15 * 60_000);
  const prepared = new WeakSet<World>();
  const results = await runTable(t, ['reference', 'ours'], variants, 3, async (w, v, i): Promise<Seen> => {
    if (!prepared.has(w)) {
      await prepare(w);
      prepared.add(w);
    }
    const id = `variant${i}`;
    const ifname = `ev${i}`;
    const call: CallSpec = { containerId: id, ifname, ...(v.args && { args: fill(v.args, w, { id }) }) };
    const stdin = JSON.stringify(fill(v.conf, w, { id, ifname }));
    const before = await worldState(w);
    const add = await callPlugin(w, v.plugin, call, stdin);
    const summary = await summarise(w, v, ifname, add);
    const del = await callPlugin(w, v.plugin, { ...call, command: 'DEL' }, stdin);
    // The bridge device itself stays, as with the reference: it is the network's, not the container's.
    const leftovers = stateDiff(before, await worldState(w)).filter((l) => !/ctvbr0|10\.77\.0\.1\/24|10\.79\.0\.1\/24/.test(l));
    return { add, del, summary, leftovers };
  });
  let compared = 0;
  const refused: string[] = [];
  variants.forEach((v, i) => {
    const ref = results.reference[i] as Seen;
    const ours = results.ours[i] as Seen;
    if (ref.add.exitCode !== 0) {
      refused.push(`${v.name}: ${ref.add.stdout.replace(/\s+/g, ' ').slice(0, 160)}`);
      return;
    }
    compared++;
    t.is(ours.add.exitCode, 0, `${v.name}: ours refuses what the reference accepts: ${ours.add.stdout}`);
    t.deepEqual(ours.summary, ref.summary, `${v.name}: ours does not do the same`);
    t.is(ours.del.exitCode, 0, `${v.name}: DEL: ${ours.del.stdout}`);
    t.deepEqual(ours.leftovers, [], `${v.name}: left behind after DEL`);
  });
  t.log(
    `${variants.length} variants, ${compared} accepted by the reference and compared; refused by the reference: ${refused.length}`,
  );
  for (const r of refused) t.log(`  reference refuses ${r}`);
  t.true(compared >= variants.length - 2, 'the table exercises what the reference accepts');
});
