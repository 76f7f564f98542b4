/**
 * Byte layouts of the structs in bpf/include/veil/maps.h and their codecs, plus the header's
 * constants. A privileged test compares every layout with the BTF clang emits for a fixture that
 * uses all of them; a unit test compares the constants with the header's #defines. Addresses are
 * in network byte order, every other integer in host byte order (little-endian on the platforms
 * Veil supports: x86_64 and arm64).
 */
import { endianness } from 'node:os';
import { ValidationError } from '../errors.js';
import { canonicalCidr, checkIp, formatIp, parseIp, quote, type Cidr, type IpFamily } from '../net/ip.js';
import { checkInt, U32_MAX } from '../netlink/validate.js';

if (endianness() !== 'LE') throw new Error('agent/datapath/layout.ts encodes host-order integers as little-endian; this platform is big-endian');

/** Encodes and decodes one fixed-size value at an offset of a buffer. */
export interface Codec<T> {
  readonly size: number;
  encode(value: T, out: Buffer, off: number): void;
  decode(buf: Buffer, off: number): T;
}

export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}

export interface StructLayout {
  readonly name: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, FieldLayout>>;
}

function layout<N extends string>(name: string, size: number, fields: readonly (readonly [N, number, number])[]): { readonly name: string; readonly size: number; readonly fields: Readonly<Record<N, FieldLayout>> } {
  return { name, size, fields: Object.fromEntries(fields.map(([n, offset, sz]) => [n, { offset, size: sz }])) as Record<N, FieldLayout> };
}

/** Every struct of maps.h: [field, byte offset, byte size]. */
export const LAYOUTS = {
  veil_endpoint_key: layout('veil_endpoint_key', 4, [['ifindex', 0, 4]]),
  veil_endpoint: layout('veil_endpoint', 32, [['identity', 0, 4], ['flags', 4, 4], ['ipv4', 8, 4], ['ipv6', 12, 16], ['key_generation', 28, 1], ['pad', 29, 3]]),
  veil_ipcache_entry: layout('veil_ipcache_entry', 24, [['identity', 0, 4], ['node_index', 4, 2], ['key_slot', 6, 1], ['flags', 7, 1], ['tunnel_endpoint', 8, 16]]),
  veil_ipcache4_host_key: layout('veil_ipcache4_host_key', 4, [['addr', 0, 4]]),
  veil_ipcache6_host_key: layout('veil_ipcache6_host_key', 16, [['addr', 0, 16]]),
  veil_ipcache4_lpm_key: layout('veil_ipcache4_lpm_key', 8, [['prefixlen', 0, 4], ['addr', 4, 4]]),
  veil_ipcache6_lpm_key: layout('veil_ipcache6_lpm_key', 20, [['prefixlen', 0, 4], ['addr', 4, 16]]),
  veil_policy_key: layout('veil_policy_key', 12, [['subject', 0, 4], ['peer', 4, 4], ['dport', 8, 2], ['proto', 10, 1], ['direction', 11, 1]]),
  veil_policy_value: layout('veil_policy_value', 4, [['verdict', 0, 1], ['flags', 1, 1], ['pad', 2, 2]]),
  veil_config: layout('veil_config', 24, [['flags', 0, 4], ['wireguard_ifindex', 4, 8], ['node_identity', 12, 4], ['wireguard_port', 16, 2], ['node_index', 18, 2], ['pad', 20, 4]]),
  veil_counter: layout('veil_counter', 16, [['packets', 0, 8], ['bytes', 8, 8]]),
  veil_event: layout('veil_event', 64, [
    ['timestamp_ns', 0, 8], ['src_identity', 8, 4], ['dst_identity', 12, 4], ['ifindex', 16, 4], ['type', 20, 1], ['reason', 21, 1],
    ['hook', 22, 1], ['family', 23, 1], ['proto', 24, 1], ['pad', 25, 3], ['sport', 28, 2], ['dport', 30, 2], ['saddr', 32, 16], ['daddr', 48, 16],
  ]),
};

/** The #defines of maps.h (names without the VEIL_ prefix). */
export const MapsAbi = {
  AF_INET: 4,
  AF_INET6: 6,
  EP_F_HAS_IPV4: 1 << 0,
  EP_F_HAS_IPV6: 1 << 1,
  EP_F_ENFORCE_INGRESS: 1 << 2,
  EP_F_ENFORCE_EGRESS: 1 << 3,
  IPC_F_LOCAL: 1 << 0,
  IPC_F_POD: 1 << 1,
  IPC_F_NODE: 1 << 2,
  IPC_F_TUNNEL_V6: 1 << 3,
  DIR_INGRESS: 0,
  DIR_EGRESS: 1,
  VERDICT_ALLOW: 1,
  VERDICT_DENY: 2,
  POL_F_REQUIRE_ENCRYPTION: 1 << 0,
  POL_F_REQUIRE_AUTH_IDENTITY: 1 << 1,
  WG_CHANNELS: 2,
  CFG_F_STRICT: 1 << 0,
  CFG_F_MODE_WIREGUARD: 1 << 1,
  CFG_F_MODE_IPSEC: 1 << 2,
  EVENT_DROP: 1,
  EVENT_FLOW_NEW: 2,
} as const;

const F = {
  ep: LAYOUTS.veil_endpoint.fields,
  ipc: LAYOUTS.veil_ipcache_entry.fields,
  pk: LAYOUTS.veil_policy_key.fields,
  pv: LAYOUTS.veil_policy_value.fields,
  cfg: LAYOUTS.veil_config.fields,
  ev: LAYOUTS.veil_event.fields,
};

function u8(field: string, v: unknown): number {
  return checkInt(field, v, 0, 0xff);
}
function u16(field: string, v: unknown): number {
  return checkInt(field, v, 0, 0xffff);
}
function u32(field: string, v: unknown): number {
  return checkInt(field, v, 0, U32_MAX);
}
function addrOf(field: string, v: unknown, family: IpFamily): Uint8Array {
  const c = checkIp(field, v, family);
  return parseIp(c.addr) as Uint8Array;
}

// ---- endpoints ----

export const endpointKeyCodec: Codec<number> = {
  size: 4,
  encode: (ifindex, out, off) => void out.writeUInt32LE(checkInt('ifindex', ifindex, 1, 0x7fffffff), off),
  decode: (buf, off) => buf.readUInt32LE(off),
};

/** A pod behind a host-side interface. HAS_IPV4 / HAS_IPV6 follow from the addresses given. */
export interface EndpointValue {
  identity: number;
  /** VEIL_EP_F_ENFORCE_* (the address flags are derived). */
  flags: number;
  ipv4?: string;
  ipv6?: string;
  /**
   * IPsec mode: the generation the pod identity's key sends with (0..255; from-pod uses it mod 4
   * as the high half of the SA key slot). Absent = 0 (WireGuard mode, or no key yet).
   */
  keyGeneration?: number;
}

export const endpointCodec: Codec<EndpointValue> = {
  size: LAYOUTS.veil_endpoint.size,
  encode(v, out, off) {
    out.fill(0, off, off + this.size);
    let flags = u32('flags', v.flags ?? 0) & ~(MapsAbi.EP_F_HAS_IPV4 | MapsAbi.EP_F_HAS_IPV6);
    out.writeUInt32LE(u32('identity', v.identity), off + F.ep.identity.offset);
    if (v.ipv4 !== undefined) {
      out.set(addrOf('ipv4', v.ipv4, 4), off + F.ep.ipv4.offset);
      flags |= MapsAbi.EP_F_HAS_IPV4;
    }
    if (v.ipv6 !== undefined) {
      out.set(addrOf('ipv6', v.ipv6, 6), off + F.ep.ipv6.offset);
      flags |= MapsAbi.EP_F_HAS_IPV6;
    }
    out.writeUInt32LE(flags >>> 0, off + F.ep.flags.offset);
    if (v.keyGeneration !== undefined) out.writeUInt8(checkInt('keyGeneration', v.keyGeneration, 0, 0xff), off + F.ep.key_generation.offset);
  },
  decode(buf, off) {
    const flags = buf.readUInt32LE(off + F.ep.flags.offset);
    const v: EndpointValue = { identity: buf.readUInt32LE(off + F.ep.identity.offset), flags };
    if (flags & MapsAbi.EP_F_HAS_IPV4) v.ipv4 = formatIp(buf.subarray(off + F.ep.ipv4.offset, off + F.ep.ipv4.offset + 4));
    if (flags & MapsAbi.EP_F_HAS_IPV6) v.ipv6 = formatIp(buf.subarray(off + F.ep.ipv6.offset, off + F.ep.ipv6.offset + 16));
    const generation = buf.readUInt8(off + F.ep.key_generation.offset);
    if (generation !== 0) v.keyGeneration = generation;
    return v;
  },
};

// ---- ipcache ----

export interface IpcacheValue {
  identity: number;
  /** 0 = this node / not a node. */
  nodeIndex: number;
  /** The destination node's current key slot, 0..15. */
  keySlot: number;
  /** VEIL_IPC_F_LOCAL / POD / NODE (TUNNEL_V6 follows from tunnelEndpoint). */
  flags: number;
  /** Underlay address of the node hosting it. */
  tunnelEndpoint?: string;
}

export const ipcacheValueCodec: Codec<IpcacheValue> = {
  size: LAYOUTS.veil_ipcache_entry.size,
  encode(v, out, off) {
    out.fill(0, off, off + this.size);
    let flags = u8('flags', v.flags ?? 0) & ~MapsAbi.IPC_F_TUNNEL_V6;
    out.writeUInt32LE(u32('identity', v.identity), off + F.ipc.identity.offset);
    out.writeUInt16LE(u16('nodeIndex', v.nodeIndex ?? 0), off + F.ipc.node_index.offset);
    out.writeUInt8(checkInt('keySlot', v.keySlot ?? 0, 0, 15), off + F.ipc.key_slot.offset);
    if (v.tunnelEndpoint !== undefined) {
      const c = checkIp('tunnelEndpoint', v.tunnelEndpoint);
      out.set(parseIp(c.addr) as Uint8Array, off + F.ipc.tunnel_endpoint.offset);
      if (c.family === 6) flags |= MapsAbi.IPC_F_TUNNEL_V6;
    }
    out.writeUInt8(flags, off + F.ipc.flags.offset);
  },
  decode(buf, off) {
    const flags = buf.readUInt8(off + F.ipc.flags.offset);
    const v: IpcacheValue = {
      identity: buf.readUInt32LE(off + F.ipc.identity.offset),
      nodeIndex: buf.readUInt16LE(off + F.ipc.node_index.offset),
      keySlot: buf.readUInt8(off + F.ipc.key_slot.offset),
      flags,
    };
    const t = off + F.ipc.tunnel_endpoint.offset;
    const v6 = (flags & MapsAbi.IPC_F_TUNNEL_V6) !== 0;
    const bytes = buf.subarray(t, t + (v6 ? 16 : 4));
    if (bytes.some((b) => b !== 0)) v.tunnelEndpoint = formatIp(bytes);
    return v;
  },
};

/** Host keys: an address of one family. */
export function hostKeyCodec(family: IpFamily): Codec<string> {
  const size = family === 4 ? 4 : 16;
  return {
    size,
    encode: (addr, out, off) => void out.set(addrOf('address', addr, family), off),
    decode: (buf, off) => formatIp(buf.subarray(off, off + size)),
  };
}

/** LPM keys (struct bpf_lpm_trie_key layout): a prefix of one family, host bits cleared. */
export function lpmKeyCodec(family: IpFamily): Codec<string> {
  const alen = family === 4 ? 4 : 16;
  return {
    size: 4 + alen,
    encode(prefix, out, off) {
      const c: Cidr = canonicalCidr('prefix', prefix, { family });
      out.writeUInt32LE(c.prefixLen, off);
      out.set(parseIp(c.addr) as Uint8Array, off + 4);
    },
    decode: (buf, off) => `${formatIp(buf.subarray(off + 4, off + 4 + alen))}/${buf.readUInt32LE(off)}`,
  };
}

// ---- policy ----

export type PolicyDirection = 'ingress' | 'egress';
export type PolicyVerdict = 'allow' | 'deny';

export interface PolicyKey {
  /** Identity of the pod the policy protects. */
  subject: number;
  /** Identity of the other side; 0 = any. */
  peer: number;
  /** Destination port; 0 = any. */
  dport: number;
  /** IPPROTO_*; 0 = any (then dport must be 0). */
  proto: number;
  direction: PolicyDirection;
}

export interface PolicyValue {
  verdict: PolicyVerdict;
  /** VEIL_POL_F_*. */
  flags: number;
}

export const policyKeyCodec: Codec<PolicyKey> = {
  size: LAYOUTS.veil_policy_key.size,
  encode(k, out, off) {
    const proto = u8('proto', k.proto);
    const dport = u16('dport', k.dport);
    if (proto === 0 && dport !== 0) throw new ValidationError('dport', `Invalid dport ${quote(dport)} with proto 0 (any): a port needs a protocol; set proto or dport 0`);
    if (k.direction !== 'ingress' && k.direction !== 'egress') throw new ValidationError('direction', `Invalid direction ${quote(k.direction)}: give "ingress" or "egress"`);
    out.writeUInt32LE(u32('subject', k.subject), off + F.pk.subject.offset);
    out.writeUInt32LE(u32('peer', k.peer), off + F.pk.peer.offset);
    out.writeUInt16LE(dport, off + F.pk.dport.offset);
    out.writeUInt8(proto, off + F.pk.proto.offset);
    out.writeUInt8(k.direction === 'ingress' ? MapsAbi.DIR_INGRESS : MapsAbi.DIR_EGRESS, off + F.pk.direction.offset);
  },
  decode(buf, off) {
    return {
      subject: buf.readUInt32LE(off + F.pk.subject.offset),
      peer: buf.readUInt32LE(off + F.pk.peer.offset),
      dport: buf.readUInt16LE(off + F.pk.dport.offset),
      proto: buf.readUInt8(off + F.pk.proto.offset),
      direction: buf.readUInt8(off + F.pk.direction.offset) === MapsAbi.DIR_EGRESS ? 'egress' : 'ingress',
    };
  },
};

export const policyValueCodec: Codec<PolicyValue> = {
  size: LAYOUTS.veil_policy_value.size,
  encode(v, out, off) {
    if (v.verdict !== 'allow' && v.verdict !== 'deny') throw new ValidationError('verdict', `Invalid verdict ${quote(v.verdict)}: give "allow" or "deny"`);
    out.fill(0, off, off + this.size);
    out.writeUInt8(v.verdict === 'allow' ? MapsAbi.VERDICT_ALLOW : MapsAbi.VERDICT_DENY, off + F.pv.verdict.offset);
    out.writeUInt8(u8('flags', v.flags ?? 0), off + F.pv.flags.offset);
  },
  decode(buf, off) {
    return { verdict: buf.readUInt8(off + F.pv.verdict.offset) === MapsAbi.VERDICT_DENY ? 'deny' : 'allow', flags: buf.readUInt8(off + F.pv.flags.offset) };
  },
};

// ---- config ----

export interface DatapathConfig {
  /** VEIL_CFG_F_*. */
  flags: number;
  /** WireGuard device per channel (0 = channel down); from-pod uses [keySlot & 1]. */
  wireguardIfindex: [number, number];
  nodeIdentity: number;
  /** Channel 0's UDP port; channel 1 listens on wireguardPort + 1. */
  wireguardPort: number;
  nodeIndex: number;
}

export const configCodec: Codec<DatapathConfig> = {
  size: LAYOUTS.veil_config.size,
  encode(v, out, off) {
    out.fill(0, off, off + this.size);
    out.writeUInt32LE(u32('flags', v.flags), off + F.cfg.flags.offset);
    if (!Array.isArray(v.wireguardIfindex) || v.wireguardIfindex.length !== MapsAbi.WG_CHANNELS) {
      throw new ValidationError('wireguardIfindex', `Invalid wireguardIfindex ${quote(v.wireguardIfindex)}: give one ifindex per channel (${MapsAbi.WG_CHANNELS}), 0 for a channel that is down`);
    }
    v.wireguardIfindex.forEach((ifx, i) => out.writeUInt32LE(u32(`wireguardIfindex[${i}]`, ifx), off + F.cfg.wireguard_ifindex.offset + 4 * i));
    out.writeUInt32LE(u32('nodeIdentity', v.nodeIdentity), off + F.cfg.node_identity.offset);
    // Channel 1 uses port + 1, so the port must leave room for it.
    out.writeUInt16LE(checkInt('wireguardPort', v.wireguardPort, 0, 0xfffe), off + F.cfg.wireguard_port.offset);
    out.writeUInt16LE(u16('nodeIndex', v.nodeIndex), off + F.cfg.node_index.offset);
  },
  decode(buf, off) {
    return {
      flags: buf.readUInt32LE(off + F.cfg.flags.offset),
      wireguardIfindex: [buf.readUInt32LE(off + F.cfg.wireguard_ifindex.offset), buf.readUInt32LE(off + F.cfg.wireguard_ifindex.offset + 4)],
      nodeIdentity: buf.readUInt32LE(off + F.cfg.node_identity.offset),
      wireguardPort: buf.readUInt16LE(off + F.cfg.wireguard_port.offset),
      nodeIndex: buf.readUInt16LE(off + F.cfg.node_index.offset),
    };
  },
};

// ---- counters, events, plain integers ----

export interface CounterValue {
  packets: bigint;
  bytes: bigint;
}

export const counterCodec: Codec<CounterValue> = {
  size: LAYOUTS.veil_counter.size,
  encode(v, out, off) {
    out.writeBigUInt64LE(v.packets, off);
    out.writeBigUInt64LE(v.bytes, off + 8);
  },
  decode: (buf, off) => ({ packets: buf.readBigUInt64LE(off), bytes: buf.readBigUInt64LE(off + 8) }),
};

export const u32Codec: Codec<number> = {
  size: 4,
  encode: (v, out, off) => void out.writeUInt32LE(u32('key', v), off),
  decode: (buf, off) => buf.readUInt32LE(off),
};

/** Raw bytes of a fixed size (for maps the agent does not interpret). */
export function bytesCodec(size: number): Codec<Buffer> {
  return {
    size,
    encode(v, out, off) {
      if (!(v instanceof Uint8Array) || v.length !== size) throw new ValidationError('bytes', `Invalid value of ${v instanceof Uint8Array ? v.length : quote(v)} bytes: the map takes ${size}`);
      out.set(v, off);
    },
    decode: (buf, off) => Buffer.from(buf.subarray(off, off + size)),
  };
}

export interface RawEvent {
  timestampNs: bigint;
  srcIdentity: number;
  dstIdentity: number;
  ifindex: number;
  type: number;
  reason: number;
  hook: number;
  /** 4, 6 or 0 (not IP). */
  family: number;
  proto: number;
  sport: number;
  dport: number;
  saddr?: string;
  daddr?: string;
}

/** Decodes a ring-buffer record (struct veil_event); undefined when it is too short. */
export function decodeEvent(buf: Buffer, off = 0): RawEvent | undefined {
  if (buf.length - off < LAYOUTS.veil_event.size) return undefined;
  const family = buf.readUInt8(off + F.ev.family.offset);
  const alen = family === MapsAbi.AF_INET ? 4 : family === MapsAbi.AF_INET6 ? 16 : 0;
  const e: RawEvent = {
    timestampNs: buf.readBigUInt64LE(off + F.ev.timestamp_ns.offset),
    srcIdentity: buf.readUInt32LE(off + F.ev.src_identity.offset),
    dstIdentity: buf.readUInt32LE(off + F.ev.dst_identity.offset),
    ifindex: buf.readUInt32LE(off + F.ev.ifindex.offset),
    type: buf.readUInt8(off + F.ev.type.offset),
    reason: buf.readUInt8(off + F.ev.reason.offset),
    hook: buf.readUInt8(off + F.ev.hook.offset),
    family,
    proto: buf.readUInt8(off + F.ev.proto.offset),
    sport: buf.readUInt16LE(off + F.ev.sport.offset),
    dport: buf.readUInt16LE(off + F.ev.dport.offset),
  };
  if (alen) {
    e.saddr = formatIp(buf.subarray(off + F.ev.saddr.offset, off + F.ev.saddr.offset + alen));
    e.daddr = formatIp(buf.subarray(off + F.ev.daddr.offset, off + F.ev.daddr.offset + alen));
  }
  return e;
}
