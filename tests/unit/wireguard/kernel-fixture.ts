/**
 * WireGuard generic-netlink fixtures, written from /usr/include/linux/wireguard.h and
 * linux/in.h / linux/in6.h (sockaddr_in, sockaddr_in6) independently of the addon.
 */
import { attr, ipBytes, nlmsg, NLM_F_ACK, NLM_F_REQUEST, Struct, type Attr } from '../../support/nl-fixture.js';

export const WG_CMD_GET_DEVICE = 0;
export const WG_CMD_SET_DEVICE = 1;
export const WG_GENL_VERSION = 1;

export const WGDEVICE_F_REPLACE_PEERS = 1;
export const WGDEVICE_A = { IFINDEX: 1, IFNAME: 2, PRIVATE_KEY: 3, PUBLIC_KEY: 4, FLAGS: 5, LISTEN_PORT: 6, FWMARK: 7, PEERS: 8 };
export const WGPEER_F = { REMOVE_ME: 1, REPLACE_ALLOWEDIPS: 2, UPDATE_ONLY: 4 };
export const WGPEER_A = {
  PUBLIC_KEY: 1,
  PRESHARED_KEY: 2,
  FLAGS: 3,
  ENDPOINT: 4,
  PERSISTENT_KEEPALIVE_INTERVAL: 5,
  LAST_HANDSHAKE_TIME: 6,
  RX_BYTES: 7,
  TX_BYTES: 8,
  ALLOWEDIPS: 9,
  PROTOCOL_VERSION: 10,
};
export const WGALLOWEDIP_A = { FAMILY: 1, IPADDR: 2, CIDR_MASK: 3 };
export const AF_INET = 2;
export const AF_INET6 = 10;
export const NLMSG_DONE = 3;
export const NLM_F_MULTI = 2;

/** A family id as the kernel might assign it (any value works; the encoder takes it as given). */
export const FAMILY = 0x1d;

export const genl = (cmd: number): Buffer => new Struct(4).u8(0, cmd).u8(1, WG_GENL_VERSION).buf;

/** struct sockaddr_in: family, port (network order), address, 8 bytes of zero. */
export const sockaddrIn = (ip: string, port: number): Buffer =>
  new Struct(16).u16(0, AF_INET).u16be(2, port).bytes(4, ipBytes(ip)).buf;

/** struct sockaddr_in6: family, port, flowinfo, address, scope id. */
export const sockaddrIn6 = (ip: string, port: number): Buffer =>
  new Struct(28).u16(0, AF_INET6).u16be(2, port).u32(4, 0).bytes(8, ipBytes(ip)).u32(24, 0).buf;

export function allowedIp(cidr: string): Attr {
  const [ip, prefix] = cidr.split('/') as [string, string];
  return attr.nest(0, [
    attr.u16(WGALLOWEDIP_A.FAMILY, ip.includes(':') ? AF_INET6 : AF_INET),
    attr.bytes(WGALLOWEDIP_A.IPADDR, ipBytes(ip)),
    attr.u8(WGALLOWEDIP_A.CIDR_MASK, Number(prefix)),
  ]);
}

/** One WG_CMD_SET_DEVICE request as the addon sends it (REQUEST|ACK, seq 0). */
export const setMsg = (attrs: Attr[]): Buffer =>
  nlmsg(FAMILY, NLM_F_REQUEST | NLM_F_ACK, genl(WG_CMD_SET_DEVICE), attrs);

/** One message of a get-device dump reply as the kernel sends it. */
export const getReply = (attrs: Attr[], seq = 1): Buffer => nlmsg(FAMILY, NLM_F_MULTI, genl(WG_CMD_GET_DEVICE), attrs, seq);

export const done = (seq = 1): Buffer => nlmsg(NLMSG_DONE, NLM_F_MULTI, new Struct(4).i32(0, 0).buf, [], seq);

/** struct __kernel_timespec { s64 tv_sec; s64 tv_nsec; }. */
export const timespec = (sec: bigint, nsec: bigint): Buffer => new Struct(16).u64(0, sec).u64(8, nsec).buf;

export const key = (fill: number): Buffer => Buffer.alloc(32, fill);

/** Walks attributes (for structural checks of large encodings). */
export function walkAttrs(buf: Buffer): { type: number; nested: boolean; value: Buffer }[] {
  const out: { type: number; nested: boolean; value: Buffer }[] = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2);
    if (len < 4 || off + len > buf.length) throw new Error(`Bad attribute at ${off}`);
    out.push({ type: type & 0x3fff, nested: (type & 0x8000) !== 0, value: buf.subarray(off + 4, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}
