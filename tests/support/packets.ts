/**
 * The one packet builder for tests and benchmarks: Ethernet + IPv4/IPv6 + TCP/UDP/ICMP/ICMPv6
 * with correct checksums, and helpers that truncate or damage a built frame. Addresses are text
 * (parsed by agent/net/ip.ts); the family follows from them.
 */
import { parseIp } from '../../agent/net/ip.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_ARP = 0x0806;
export const ETH_HLEN = 14;

export const IPPROTO = { icmp: 1, tcp: 6, udp: 17, esp: 50, icmpv6: 58, sctp: 132 } as const;

export const TCP_FLAGS = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 } as const;

export interface L2Options {
  srcMac?: string;
  dstMac?: string;
}

export interface IpOptions extends L2Options {
  src: string;
  dst: string;
  ttl?: number;
  /** IPv4: fragment offset in 8-byte units and more-fragments flag; IPv6: adds a fragment header. */
  fragmentOffset?: number;
  moreFragments?: boolean;
  /** IPv4 identification / IPv6 fragment header id (default 0x1234 / 0xabcd). */
  ipId?: number;
}

export interface TcpOptions extends IpOptions {
  sport: number;
  dport: number;
  flags?: number;
  payload?: Uint8Array;
}

export interface UdpOptions extends IpOptions {
  sport: number;
  dport: number;
  payload?: Uint8Array;
}

export interface IcmpEchoOptions extends IpOptions {
  id: number;
  seq?: number;
  reply?: boolean;
  payload?: Uint8Array;
}

export interface IcmpErrorOptions extends IpOptions {
  /** ICMP type (IPv4: 3 unreachable, 11 time exceeded; IPv6: 1 unreachable, 3 time exceeded). */
  type: number;
  code?: number;
  /** The offending IP packet (no Ethernet header), quoted in the error. */
  quoted: Uint8Array;
}

function addr(text: string): Uint8Array {
  const b = parseIp(text);
  if (!b) throw new Error(`Invalid test address "${text}": use an IPv4 or IPv6 address`);
  return b;
}

function mac(text: string): Uint8Array {
  const parts = text.split(':').map((h) => Number.parseInt(h, 16));
  if (parts.length !== 6 || parts.some((p) => !(p >= 0 && p <= 255))) throw new Error(`Invalid test MAC "${text}"`);
  return Uint8Array.from(parts);
}

/** RFC 1071 one's-complement sum over `chunks`, folded and complemented. */
export function inetChecksum(...chunks: Uint8Array[]): number {
  let sum = 0;
  for (const c of chunks) {
    for (let i = 0; i + 1 < c.length; i += 2) sum += (c[i]! << 8) | c[i + 1]!;
    if (c.length % 2) sum += c[c.length - 1]! << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function pseudoHeader(src: Uint8Array, dst: Uint8Array, proto: number, len: number): Uint8Array {
  if (src.length === 4) {
    const p = new Uint8Array(12);
    p.set(src, 0);
    p.set(dst, 4);
    p[9] = proto;
    new DataView(p.buffer).setUint16(10, len);
    return p;
  }
  const p = new Uint8Array(40);
  p.set(src, 0);
  p.set(dst, 16);
  new DataView(p.buffer).setUint32(32, len);
  p[39] = proto;
  return p;
}

/** An IP packet (no Ethernet) carrying `l4` of protocol `proto`; L4 checksum filled at `csumAt`. */
export function ipPacket(o: IpOptions, proto: number, l4: Uint8Array, csumAt?: number, pseudo = true): Uint8Array {
  const src = addr(o.src);
  const dst = addr(o.dst);
  if (src.length !== dst.length) throw new Error(`Test packet mixes families: "${o.src}" and "${o.dst}"`);
  const seg = l4.slice();
  if (csumAt !== undefined) {
    seg[csumAt] = 0;
    seg[csumAt + 1] = 0;
    const c = pseudo ? inetChecksum(pseudoHeader(src, dst, proto, seg.length), seg) : inetChecksum(seg);
    new DataView(seg.buffer).setUint16(csumAt, c === 0 && proto === IPPROTO.udp ? 0xffff : c);
  }
  if (src.length === 4) {
    const h = new Uint8Array(20);
    const v = new DataView(h.buffer);
    h[0] = 0x45;
    v.setUint16(2, 20 + seg.length);
    v.setUint16(4, o.ipId ?? 0x1234);
    v.setUint16(6, ((o.moreFragments ? 1 : 0) << 13) | (o.fragmentOffset ?? 0));
    h[8] = o.ttl ?? 64;
    h[9] = proto;
    h.set(src, 12);
    h.set(dst, 16);
    v.setUint16(10, inetChecksum(h));
    return concat(h, seg);
  }
  const frag = o.fragmentOffset !== undefined || o.moreFragments;
  const h = new Uint8Array(40);
  const v = new DataView(h.buffer);
  v.setUint32(0, 6 << 28);
  v.setUint16(4, seg.length + (frag ? 8 : 0));
  h[6] = frag ? 44 : proto;
  h[7] = o.ttl ?? 64;
  h.set(src, 8);
  h.set(dst, 24);
  if (!frag) return concat(h, seg);
  const f = new Uint8Array(8);
  f[0] = proto;
  new DataView(f.buffer).setUint16(2, ((o.fragmentOffset ?? 0) << 3) | (o.moreFragments ? 1 : 0));
  new DataView(f.buffer).setUint32(4, o.ipId ?? 0xabcd);
  return concat(h, f, seg);
}

/** An Ethernet frame around `payload`. */
export function ethernet(ethType: number, payload: Uint8Array, o: L2Options = {}): Uint8Array {
  const h = new Uint8Array(ETH_HLEN);
  h.set(mac(o.dstMac ?? '02:00:00:00:00:02'), 0);
  h.set(mac(o.srcMac ?? '02:00:00:00:00:01'), 6);
  new DataView(h.buffer).setUint16(12, ethType);
  return concat(h, payload);
}

function ipFrame(o: IpOptions, ip: Uint8Array): Uint8Array {
  return ethernet((ip[0]! >> 4) === 4 ? ETH_P_IP : ETH_P_IPV6, ip, o);
}

export function tcpSegment(o: TcpOptions): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  const t = new Uint8Array(20 + payload.length);
  const v = new DataView(t.buffer);
  v.setUint16(0, o.sport);
  v.setUint16(2, o.dport);
  v.setUint32(4, 1000);
  v.setUint32(8, (o.flags ?? TCP_FLAGS.syn) & TCP_FLAGS.ack ? 2000 : 0);
  t[12] = 5 << 4;
  t[13] = o.flags ?? TCP_FLAGS.syn;
  v.setUint16(14, 65535);
  t.set(payload, 20);
  return ipPacket(o, IPPROTO.tcp, t, 16);
}

export function udpDatagram(o: UdpOptions): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  const u = new Uint8Array(8 + payload.length);
  const v = new DataView(u.buffer);
  v.setUint16(0, o.sport);
  v.setUint16(2, o.dport);
  v.setUint16(4, u.length);
  u.set(payload, 8);
  return ipPacket(o, IPPROTO.udp, u, 6);
}

function isV6(o: IpOptions): boolean {
  return addr(o.src).length === 16;
}

export function icmpEchoPacket(o: IcmpEchoOptions): Uint8Array {
  const payload = o.payload ?? new Uint8Array(8);
  const m = new Uint8Array(8 + payload.length);
  const v = new DataView(m.buffer);
  const v6 = isV6(o);
  m[0] = v6 ? (o.reply ? 129 : 128) : o.reply ? 0 : 8;
  v.setUint16(4, o.id);
  v.setUint16(6, o.seq ?? 1);
  m.set(payload, 8);
  return ipPacket(o, v6 ? IPPROTO.icmpv6 : IPPROTO.icmp, m, 2, v6);
}

export function icmpErrorPacket(o: IcmpErrorOptions): Uint8Array {
  const m = new Uint8Array(8 + o.quoted.length);
  const v6 = isV6(o);
  m[0] = o.type;
  m[1] = o.code ?? 0;
  m.set(o.quoted, 8);
  return ipPacket(o, v6 ? IPPROTO.icmpv6 : IPPROTO.icmp, m, 2, v6);
}

/** An ICMPv6 message of any type (e.g. 135 neighbour solicitation) with an 8+ byte body. */
export function icmpv6Packet(o: IpOptions & { type: number; code?: number; body?: Uint8Array }): Uint8Array {
  const body = o.body ?? new Uint8Array(20);
  const m = new Uint8Array(4 + body.length);
  m[0] = o.type;
  m[1] = o.code ?? 0;
  m.set(body, 4);
  return ipPacket(o, IPPROTO.icmpv6, m, 2, true);
}

/** A bare IP packet of another protocol (e.g. ESP) with an opaque payload. */
export function rawIpPacket(o: IpOptions & { proto: number; payload?: Uint8Array }): Uint8Array {
  return ipPacket(o, o.proto, o.payload ?? new Uint8Array(16));
}

export const tcp = (o: TcpOptions): Uint8Array => ipFrame(o, tcpSegment(o));
export const udp = (o: UdpOptions): Uint8Array => ipFrame(o, udpDatagram(o));
export const icmpEcho = (o: IcmpEchoOptions): Uint8Array => ipFrame(o, icmpEchoPacket(o));
export const icmpError = (o: IcmpErrorOptions): Uint8Array => ipFrame(o, icmpErrorPacket(o));
export const icmpv6 = (o: IpOptions & { type: number; code?: number; body?: Uint8Array }): Uint8Array =>
  ipFrame(o, icmpv6Packet(o));
export const rawIp = (o: IpOptions & { proto: number; payload?: Uint8Array }): Uint8Array => ipFrame(o, rawIpPacket(o));

/** An ARP request frame (who-has `target` tell `sender`, IPv4). */
export function arp(sender: string, target: string, o: L2Options = {}): Uint8Array {
  const a = new Uint8Array(28);
  const v = new DataView(a.buffer);
  v.setUint16(0, 1);
  v.setUint16(2, ETH_P_IP);
  a[4] = 6;
  a[5] = 4;
  v.setUint16(6, 1);
  a.set(mac(o.srcMac ?? '02:00:00:00:00:01'), 8);
  a.set(addr(sender), 14);
  a.set(addr(target), 24);
  return ethernet(ETH_P_ARP, a, { ...o, dstMac: o.dstMac ?? 'ff:ff:ff:ff:ff:ff' });
}

// ---- damage ----

/** The first `len` bytes of a frame. */
export function truncate(frame: Uint8Array, len: number): Uint8Array {
  return frame.slice(0, len);
}

/** A copy of `frame` with byte `offset` set to `value`. */
export function withByte(frame: Uint8Array, offset: number, value: number): Uint8Array {
  const f = frame.slice();
  f[offset] = value;
  return f;
}

/** A copy with the 16-bit big-endian field at `offset` set to `value`. */
export function withU16(frame: Uint8Array, offset: number, value: number): Uint8Array {
  const f = frame.slice();
  new DataView(f.buffer).setUint16(offset, value);
  return f;
}

/** Checks the checksum of an IPv4 header (0 when valid) — used by the builder's own tests. */
export function ipv4HeaderChecksumOk(ip: Uint8Array): boolean {
  return inetChecksum(ip.subarray(0, (ip[0]! & 0x0f) * 4)) === 0;
}

/** Checks the L4 checksum of an IP packet (no extension headers) against its pseudo-header. */
export function l4ChecksumOk(ip: Uint8Array): boolean {
  const v4 = ip[0]! >> 4 === 4;
  const hlen = v4 ? (ip[0]! & 0x0f) * 4 : 40;
  const proto = v4 ? ip[9]! : ip[6]!;
  const seg = ip.subarray(hlen);
  if (proto === IPPROTO.icmp) return inetChecksum(seg) === 0;
  const src = v4 ? ip.subarray(12, 16) : ip.subarray(8, 24);
  const dst = v4 ? ip.subarray(16, 20) : ip.subarray(24, 40);
  return inetChecksum(pseudoHeader(src, dst, proto, seg.length), seg) === 0;
}
