/**
 * Builds expected netlink messages for byte-exact encoder tests, independently of the addon.
 * Layouts and constants are written from the kernel uapi headers (linux/netlink.h,
 * rtnetlink.h, genetlink.h, wireguard.h, xfrm.h): a fixture is the header's layout spelled out
 * field by field, so a wrong offset or attribute number in the C++ encoder fails the test.
 */

export const NLM_F_REQUEST = 0x01;
export const NLM_F_ACK = 0x04;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLA_F_NESTED = 0x8000;

const align4 = (n: number) => (n + 3) & ~3;

/** A fixed-size struct written field by field (little-endian host order, as on x86_64). */
export class Struct {
  readonly buf: Buffer;
  constructor(size: number) {
    this.buf = Buffer.alloc(size);
  }
  u8(off: number, v: number): this {
    this.buf.writeUInt8(v, off);
    return this;
  }
  u16(off: number, v: number): this {
    this.buf.writeUInt16LE(v, off);
    return this;
  }
  u16be(off: number, v: number): this {
    this.buf.writeUInt16BE(v, off);
    return this;
  }
  u32(off: number, v: number): this {
    this.buf.writeUInt32LE(v >>> 0, off);
    return this;
  }
  u32be(off: number, v: number): this {
    this.buf.writeUInt32BE(v >>> 0, off);
    return this;
  }
  i32(off: number, v: number): this {
    this.buf.writeInt32LE(v, off);
    return this;
  }
  u64(off: number, v: bigint): this {
    this.buf.writeBigUInt64LE(v, off);
    return this;
  }
  bytes(off: number, b: Buffer | Uint8Array): this {
    Buffer.from(b).copy(this.buf, off);
    return this;
  }
}

export type AttrValue = Buffer | Attr[];
export interface Attr {
  type: number;
  value: AttrValue;
  nested?: boolean;
}

export const attr = {
  u8: (type: number, v: number): Attr => ({ type, value: Buffer.from([v]) }),
  u16: (type: number, v: number): Attr => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    return { type, value: b };
  },
  u16be: (type: number, v: number): Attr => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return { type, value: b };
  },
  u32: (type: number, v: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return { type, value: b };
  },
  s32: (type: number, v: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return { type, value: b };
  },
  u64: (type: number, v: bigint): Attr => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return { type, value: b };
  },
  str: (type: number, s: string): Attr => ({ type, value: Buffer.concat([Buffer.from(s), Buffer.from([0])]) }),
  bytes: (type: number, b: Buffer | Uint8Array): Attr => ({ type, value: Buffer.from(b) }),
  flag: (type: number): Attr => ({ type, value: Buffer.alloc(0) }),
  nest: (type: number, children: Attr[]): Attr => ({ type, value: children, nested: true }),
};

export function encodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const payload = Array.isArray(a.value) ? encodeAttrs(a.value) : a.value;
    const len = 4 + payload.length;
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(len, 0);
    hdr.writeUInt16LE(a.type | (a.nested ? NLA_F_NESTED : 0), 2);
    parts.push(hdr, payload, Buffer.alloc(align4(len) - len));
  }
  return Buffer.concat(parts);
}

/**
 * One netlink message. Sequence and port id are left 0, as the addon's encode exports leave
 * them (the socket fills them in when sending).
 */
export function nlmsg(type: number, flags: number, header: Buffer, attrs: Attr[] = [], seq = 0): Buffer {
  const body = Buffer.concat([header, Buffer.alloc(align4(header.length) - header.length), encodeAttrs(attrs)]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  h.writeUInt32LE(0, 12);
  return Buffer.concat([h, body]);
}

/** IPv4/IPv6 text to network-order bytes. */
export function ipBytes(text: string): Buffer {
  if (text.includes(':')) {
    const [head, tail] = text.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
    const fill = tail !== undefined ? 8 - h.length - t.length : 0;
    const groups = [...h, ...Array(fill).fill('0'), ...t];
    const b = Buffer.alloc(16);
    groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
    return b;
  }
  return Buffer.from(text.split('.').map(Number));
}
