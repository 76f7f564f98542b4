/**
 * rtnetlink constants and fixed headers written out from the kernel uapi headers
 * (linux/rtnetlink.h, if_link.h, if_addr.h, veth.h, fib_rules.h), independently of the addon.
 */
import { Struct } from '../../support/nl-fixture.js';

export const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWADDR: 20, DELADDR: 21, NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26, NEWRULE: 32, DELRULE: 33 };
export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, MASTER: 10, OPERSTATE: 16, LINKINFO: 18, NET_NS_FD: 28, EXT_MASK: 29 };
export const IFLA_INFO = { KIND: 1, DATA: 2 };
export const VETH_INFO_PEER = 1;
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8 };
export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, TABLE: 15 };
export const RTAX_MTU = 2;
export const FRA = { DST: 1, SRC: 2, IIFNAME: 3, PRIORITY: 6, FWMARK: 10, TABLE: 15, FWMASK: 16, OIFNAME: 17, PROTOCOL: 21 };
export const IFF_UP = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; } */
export function ifinfomsg(f: { family?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  return new Struct(16).u8(0, f.family ?? 0).i32(4, f.index ?? 0).u32(8, f.flags ?? 0).u32(12, f.change ?? 0).buf;
}

/** struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index; } */
export function ifaddrmsg(f: { family: number; prefixlen: number; flags?: number; scope?: number; index: number }): Buffer {
  return new Struct(8).u8(0, f.family).u8(1, f.prefixlen).u8(2, f.flags ?? 0).u8(3, f.scope ?? 0).u32(4, f.index).buf;
}

/** struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; } */
export function rtmsg(f: { family: number; dstLen: number; table: number; protocol: number; scope: number; type: number; flags?: number }): Buffer {
  return new Struct(12).u8(0, f.family).u8(1, f.dstLen).u8(4, f.table).u8(5, f.protocol).u8(6, f.scope).u8(7, f.type).u32(8, f.flags ?? 0).buf;
}

/** struct fib_rule_hdr { u8 family, dst_len, src_len, tos, table, res1, res2, action; u32 flags; } */
export function fibRuleHdr(f: { family: number; dstLen?: number; srcLen?: number; table: number; action: number; flags?: number }): Buffer {
  return new Struct(12).u8(0, f.family).u8(1, f.dstLen ?? 0).u8(2, f.srcLen ?? 0).u8(4, f.table).u8(7, f.action).u32(8, f.flags ?? 0).buf;
}
