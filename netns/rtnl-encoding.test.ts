/**
 * The bytes we send, checked against what iproute2 sends for the same command (captured with
 * `strace -e sendmsg -x` in a sandbox), and the helpers under them. No root: the "kernel" here is a
 * recorder that ACKs every request. Real-kernel behaviour is tested in test-net/netns.test.ts.
 */
import test from 'ava';
import {
  AttrWriter,
  type Cidr,
  ErrorCode,
  formatIp,
  type IpAddr,
  ipBytes,
  ipFromBytes,
  NetlinkError,
  networkOf,
  parseAttrList,
  parseAttrs,
  parseCidr,
  parseIp,
} from '../core/index.js';
import { randomVethName } from './names.js';
import { Netlink } from './netlink.js';
import { ifinfomsg } from './rtnl-codec.js';
import { sysctlPath } from './sysctl.js';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\\x/g, ''), 'hex');
}

interface Sent {
  type: number;
  flags: number;
  body: Buffer;
}

/** A socket that records requests; GETLINK answers with `links`, everything else is ACKed (or fails with `errno`). */
function recorder(links: Record<string, { index: number; kind?: string }> = {}, errno?: Record<number, number>) {
  const sent: Sent[] = [];
  const socket = {
    async request(type: number, flags: number, body: Buffer): Promise<Buffer[]> {
      sent.push({ type, flags, body });
      const fail = errno?.[type];
      if (fail !== undefined) throw new NetlinkError(-fail);
      if (type !== 18) return [];
      const name = parseAttrs(body, 16).get(3)?.toString('utf8').replace(/\0$/, '');
      const link = name ? links[name] : undefined;
      if (!link) throw new NetlinkError(-19); // ENODEV
      const w = new AttrWriter().raw(ifinfomsg({ index: link.index })).string(3, name as string);
      if (link.kind) w.nest(18, (li) => li.kind(1, link.kind as string));
      return [w.toBuffer()];
    },
    close() {},
  };
  return { nl: new Netlink(socket, undefined), sent };
}

/** Attribute stream → { type: payload hex } with nested streams expanded, so order does not matter. */
function canon(buf: Buffer, nested: Record<number, (b: Buffer) => unknown> = {}): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const [type, payload] of parseAttrList(buf)) out[type] = nested[type] ? nested[type](payload) : payload.toString('hex');
  return out;
}

const vethShape = (body: Buffer) => ({
  header: body.subarray(0, 16).toString('hex'),
  attrs: canon(body.subarray(16), {
    18: (li) =>
      canon(li, {
        2: (data) =>
          canon(data, {
            1: (peer) => ({ header: peer.subarray(0, 16).toString('hex'), attrs: canon(peer.subarray(16)) }),
          }),
      }),
  }),
});

test('createVeth sends what `ip link add vA mtu 1400 address … type veth peer name vB mtu 1400 netns …` sends', async (t) => {
  // iproute2's request body (after the 16-byte nlmsghdr), peer namespace fd = 4.
  const iproute2 = hex(
    String.raw`\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00\x04\x00\x78\x05\x00\x00\x0a\x00\x01\x00\x02\x00\x00\x00\x00\x01\x00\x00\x07\x00\x03\x00\x76\x41\x00\x00\x3c\x00\x12\x00\x08\x00\x01\x00` +
      String.raw`\x76\x65\x74\x68\x30\x00\x02\x00\x2c\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00\x04\x00\x78\x05\x00\x00\x08\x00\x1c\x00\x04\x00\x00\x00\x07\x00\x03\x00\x76\x42\x00\x00`,
  );
  const { nl, sent } = recorder();
  await nl.createVeth('vA', 'vB', { mtu: 1400, mac: '02:00:00:00:00:01', peerNetnsPath: '/proc/self/ns/net' });
  t.is(sent.length, 1);
  const [req] = sent;
  t.is(req?.type, 16); // RTM_NEWLINK
  t.is(req?.flags, 0x608); // CREATE | EXCL | ECHO (the kernel answers with the new link; the socket adds REQUEST | ACK)
  const ours = vethShape(req?.body as Buffer);
  const theirs = vethShape(iproute2);
  // The namespace fd number differs between processes; its presence and size must not.
  const peerAttrs = (x: typeof ours) =>
    (((x.attrs[18] as Record<number, unknown>)[2] as Record<number, unknown>)[1] as { attrs: Record<number, string> }).attrs;
  t.is(peerAttrs(ours)[28]?.length, 8);
  peerAttrs(ours)[28] = 'fd';
  peerAttrs(theirs)[28] = 'fd';
  t.deepEqual(ours, theirs);
});

test('createVeth attaches to a master in the same request: by index as given, by name after one lookup', async (t) => {
  const { nl, sent } = recorder({ br0: { index: 7, kind: 'bridge' } });
  await nl.createVeth('vA', 'vB', { master: 9 });
  await nl.createVeth('vC', 'vD', { master: 'br0' });
  const masters = sent.filter((r) => r.type === 16).map((r) => parseAttrs(r.body, 16).get(10)?.readUInt32LE(0));
  t.deepEqual(masters, [9, 7]);
  t.deepEqual(
    sent.map((r) => r.type),
    [16, 18, 16],
  );
});

test('updateLink sends what `ip link set dev vA addrgenmode none` and `ip link set dev vA up` send', async (t) => {
  const { nl, sent } = recorder();
  await nl.updateLink(0xcd, { ipv6AddrGenMode: 'none' });
  await nl.updateLink(0xcd, { up: true });
  await nl.updateLink(0xcd, { ipv4Conf: { arp_notify: 1 } });
  t.deepEqual(
    sent.map((r) => [r.type, r.flags, r.body.toString('hex')]),
    [
      // iproute2: RTM_NEWLINK, ifinfomsg for index 0xcd, IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE = 1 } }
      [16, 0, '00000000cd0000000000000000000000' + '10001a000c000a000500080001000000'],
      [16, 0, '00000000cd0000000100000001000000'],
      // IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { IPV4_DEVCONF_ARP_NOTIFY (22) = 1 } } }
      [16, 0, '00000000cd0000000000000000000000' + '14001a0010000200' + '0c000100' + '0800160001000000'],
    ],
  );
});

test('bridge VLAN requests match `bridge vlan add/del` byte for byte', async (t) => {
  const { nl, sent } = recorder({ vA: { index: 2, kind: 'veth' }, bry: { index: 5, kind: 'bridge' } });
  await nl.bridgeVlanAdd('vA', 10, { pvid: true, untagged: true });
  await nl.bridgeVlanAdd('bry', 10, {});
  await nl.bridgeVlanDel('vA', 1);
  const requests = sent.filter((s) => s.type !== 18);
  t.deepEqual(
    requests.map((r) => [r.type, r.body.toString('hex')]),
    [
      // bridge vlan add dev vA vid 10 pvid untagged
      [19, '07000000020000000000000000000000' + '0c001a00080002000600' + '0a00'],
      // bridge vlan add dev bry vid 10 self
      [19, '07000000050000000000000000000000' + '14001a000600000002000000080002000000' + '0a00'],
      // bridge vlan del dev vA vid 1
      [17, '07000000020000000000000000000000' + '0c001a00080002000000' + '0100'],
    ],
  );
});

test('kernel errors become CtnetErrors: EEXIST on create is code 103, ENODEV on lookup is "absent"', async (t) => {
  const { nl } = recorder({}, { 16: 17 });
  const err = await t.throwsAsync(nl.createVeth('a0', 'b0'));
  t.is((err as { code?: number }).code, ErrorCode.exists);
  t.is(await nl.getLink('nosuch'), undefined);
  t.false(await recorder({}, { 17: 19 }).nl.deleteLink('nosuch'));
});

test('IP text and bytes', (t) => {
  const cases: Array<[string, string]> = [
    ['10.1.2.3', '10.1.2.3'],
    ['::', '::'],
    ['::1', '::1'],
    ['fd00:88::5', 'fd00:88::5'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['fe80::1:2:3:4', 'fe80::1:2:3:4'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
  ];
  const bytesOf = (text: string) => ipBytes(parseIp(text) as IpAddr);
  for (const [input, canonical] of cases) t.is(formatIp(ipFromBytes(bytesOf(input))), canonical, input);
  t.deepEqual(bytesOf('10.0.0.5'), Buffer.from([10, 0, 0, 5]));
  t.is(bytesOf('fd00::1').length, 16);
  t.is(formatIp(ipFromBytes(ipBytes(networkOf(parseCidr('10.1.2.3/12') as Cidr)))), '10.0.0.0');
  t.is(formatIp(ipFromBytes(ipBytes(networkOf(parseCidr('fd00:1:2:3::9/48') as Cidr)))), 'fd00:1:2::');
});

test('a malformed address is refused before anything is sent, naming the call', async (t) => {
  const { nl, sent } = recorder({}, {});
  await t.throwsAsync(nl.addAddress('a0', '10.0.0.0/33'), {
    message: /failed to add address 10\.0\.0\.0\/33 to a0: "10.0.0.0\/33" is not a valid CIDR/,
  });
  await t.throwsAsync(nl.addRoute({ dst: '10.0.0.0/x' }), { message: /is not a valid CIDR/ });
  t.is(sent.length, 0);
});

test('sysctl keys: dotted or slashed, no escaping /proc/sys', (t) => {
  t.is(sysctlPath('net.ipv4.ip_forward'), '/proc/sys/net/ipv4/ip_forward');
  t.is(sysctlPath('net/ipv4/conf/eth0.100/forwarding'), '/proc/sys/net/ipv4/conf/eth0.100/forwarding');
  t.throws(() => sysctlPath('net/../../etc/passwd'));
  t.throws(() => sysctlPath(''));
});

test('randomVethName: prefix + 8 hex digits, never over 15 bytes', (t) => {
  t.regex(randomVethName(), /^veth[0-9a-f]{8}$/);
  t.regex(randomVethName('cni'), /^cni[0-9a-f]{8}$/);
  const long = randomVethName('averyveryverylongprefix');
  t.is(long.length, 15);
  t.not(randomVethName(), randomVethName());
});
