/**
 * The one netlink codec of ctnet: message framing and attributes (length u16, type u16, payload padded to 4 bytes,
 * nests holding attribute streams), for every netlink family we speak: rtnetlink (netns/) and nfnetlink (iptables/).
 * Byte order is the host's (netlink is host-endian); this module assumes little-endian (x86-64, arm64).
 *
 * Why not the `netlink` package's codec (0.3.0; we use its native socket binding, core/netlink-socket.ts):
 * - Its generic layer (dist/structs.js: AttrStream, formatAttribute) writes a nest's length without the padding of
 *   its last member, where the kernel (nla_nest_end) and iproute2 count it, so our requests would no longer match
 *   iproute2's byte for byte (netns/rtnl-encoding.test.ts checks that for IFLA_AF_SPEC); and AttrStream.push masks
 *   NLA_F_NESTED off the type, which nf_tables' nests carry as libnftnl sends them.
 * - Its rtnetlink layer (dist/rt/gen_structs.js + dist/rt/ifla.js, 184 KB) takes 2–10 ms to load per process,
 *   even bundled and run from V8's code cache, and every CNI call is a new process; it also leaves the nested link
 *   data we send as raw bytes for the caller to encode: IFLA_LINKINFO, VETH_INFO_PEER (an ifinfomsg and the peer's
 *   attributes), IFLA_AF_SPEC (per-family IFLA_INET_CONF / IFLA_INET6_ADDR_GEN_MODE, bridge VLAN info).
 * So the fixed headers and attribute numbers live beside their kernel object (netns/*.ts), over this codec.
 */

export const NLMSG_HEADER_LENGTH = 16;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
/** Set on a nest's type by senders that mark nests (nfnetlink); rtnetlink's nests go without it, as iproute2 sends them. */
export const NLA_F_NESTED = 0x8000;
/** Strips NLA_F_NESTED and NLA_F_NET_BYTEORDER from an attribute's type. */
const NLA_TYPE_MASK = 0x3fff;

/** One message as the parts of a datagram: header (with NLM_F_REQUEST added), body, padding. */
export function encodeNetlinkMessage(type: number, flags: number, seq: number, body: Buffer): Buffer[] {
  const header = Buffer.alloc(NLMSG_HEADER_LENGTH);
  header.writeUInt32LE(NLMSG_HEADER_LENGTH + body.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt16LE(flags | NLM_F_REQUEST, 6);
  header.writeUInt32LE(seq, 8);
  const pad = (4 - (body.length % 4)) % 4;
  return pad ? [header, body, Buffer.alloc(pad)] : [header, body];
}

export interface NetlinkMessageView {
  type: number;
  flags: number;
  seq: number;
  /** The port ID the message is addressed to. */
  port: number;
  /** The payload after the header. */
  data: Buffer;
}

/** The messages of one datagram, in order; a truncated tail is dropped. */
export function* netlinkMessages(datagram: Buffer): Generator<NetlinkMessageView> {
  let offset = 0;
  while (offset + NLMSG_HEADER_LENGTH <= datagram.length) {
    const len = datagram.readUInt32LE(offset);
    if (len < NLMSG_HEADER_LENGTH || offset + len > datagram.length) return;
    yield {
      type: datagram.readUInt16LE(offset + 4),
      flags: datagram.readUInt16LE(offset + 6),
      seq: datagram.readUInt32LE(offset + 8),
      port: datagram.readUInt32LE(offset + 12),
      data: datagram.subarray(offset + NLMSG_HEADER_LENGTH, offset + len),
    };
    offset += (len + 3) & ~3;
  }
}

/** struct nlmsgerr of an ERROR (or ACK) message: the errno (0 for an ACK) and the quoted request's type and number. */
export function parseNetlinkError(data: Buffer): { errno: number; type: number; seq: number } | undefined {
  if (data.length < 4 + NLMSG_HEADER_LENGTH) return undefined;
  return { errno: data.readInt32LE(0), type: data.readUInt16LE(8), seq: data.readUInt32LE(12) };
}

/** Builds an attribute stream; nest() writes a container attribute around what its callback adds. */
export class AttrWriter {
  private readonly parts: Buffer[] = [];
  private length = 0;

  /** Bytes as they are: a fixed header (ifinfomsg, nfgenmsg, …) before the attributes. */
  raw(buf: Buffer): this {
    this.parts.push(buf);
    this.length += buf.length;
    return this;
  }

  bytes(type: number, payload: Buffer): this {
    const len = 4 + payload.length;
    const header = Buffer.alloc(4);
    header.writeUInt16LE(len, 0);
    header.writeUInt16LE(type, 2);
    this.raw(header).raw(payload);
    const pad = (4 - (len % 4)) % 4;
    if (pad) this.raw(Buffer.alloc(pad));
    return this;
  }

  u8(type: number, value: number): this {
    return this.bytes(type, Buffer.from([value]));
  }

  u16(type: number, value: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value);
    return this.bytes(type, b);
  }

  u32(type: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0);
    return this.bytes(type, b);
  }

  /** A NUL-terminated string (IFLA_IFNAME, nf_tables names, and most string attributes). */
  string(type: number, value: string): this {
    return this.bytes(type, Buffer.from(`${value}\0`, 'utf8'));
  }

  /** A string without terminator: IFLA_INFO_KIND, as iproute2 sends it. */
  kind(type: number, value: string): this {
    return this.bytes(type, Buffer.from(value, 'utf8'));
  }

  /** A nest; its length counts the padding of its last member, as the kernel's own nests do. */
  nest(type: number, fill: (w: AttrWriter) => void): this {
    const inner = new AttrWriter();
    fill(inner);
    return this.bytes(type, inner.toBuffer());
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

/** Attribute payloads by type (the last one wins for repeated types). */
export type Attrs = Map<number, Buffer>;

/** Calls fn(type, payload) for each attribute from `offset` on, in order; a truncated tail is dropped. */
function eachAttr(buf: Buffer, offset: number, fn: (type: number, payload: Buffer) => void): void {
  let pos = offset;
  while (pos + 4 <= buf.length) {
    const len = buf.readUInt16LE(pos);
    if (len < 4 || pos + len > buf.length) return;
    fn(buf.readUInt16LE(pos + 2) & NLA_TYPE_MASK, buf.subarray(pos + 4, pos + len));
    pos += (len + 3) & ~3;
  }
}

export function parseAttrs(buf: Buffer, offset = 0): Attrs {
  const attrs: Attrs = new Map();
  eachAttr(buf, offset, (type, payload) => attrs.set(type, payload));
  return attrs;
}

/** Every attribute in order, for streams where one type repeats (IFLA_BRIDGE_VLAN_INFO, nf_tables list elements). */
export function parseAttrList(buf: Buffer, offset = 0): Array<[number, Buffer]> {
  const list: Array<[number, Buffer]> = [];
  eachAttr(buf, offset, (type, payload) => list.push([type, payload]));
  return list;
}

export function attrU32(attrs: Attrs, type: number): number | undefined {
  const b = attrs.get(type);
  return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
}

export function attrU8(attrs: Attrs, type: number): number | undefined {
  const b = attrs.get(type);
  return b && b.length >= 1 ? b.readUInt8(0) : undefined;
}

/** A string attribute, up to its first NUL (a terminator is optional on the wire). */
export function attrString(attrs: Attrs, type: number): string | undefined {
  const b = attrs.get(type);
  return b ? cString(b) : undefined;
}

export function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}
