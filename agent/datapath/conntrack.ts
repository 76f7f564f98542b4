/**
 * The datapath's connection tracking tables (veil_ct4, veil_ct6; layouts in
 * bpf/include/veil/conntrack.h): decoding and listing entries, for `veil` and for the sweep of
 * expired entries (conntrack-gc.ts). The programs create and refresh entries; the agent only
 * reads and deletes them.
 *
 * Expiry times are on the clock bpf_ktime_get_coarse_ns() reads, CLOCK_MONOTONIC_COARSE: the
 * monotonic clock at tick resolution. process.hrtime.bigint() reads CLOCK_MONOTONIC, the same
 * clock at full resolution, so monotonicNowNs() compares directly; it runs at most one tick
 * (1-10 ms) ahead of the programs' view, so the sweep may remove an entry that much before the
 * programs would have ignored it.
 */
import { ValidationError } from '../errors.js';
import { checkIp, formatIp, parseIp, quote, type IpFamily } from '../net/ip.js';
import { checkInt } from '../netlink/validate.js';
import { openShared, type BatchResult, type BpfMap, type MapSource } from './bpf-map.js';
import type { Codec, StructLayout } from './layout.js';

export const CONNTRACK_MAPS = { 4: 'veil_ct4', 6: 'veil_ct6' } as const;

/** VEIL_CT_F_* */
export const CtFlags = {
  /** from-pod of the initiator admitted the connection (its egress policy). */
  EGRESS_OK: 1 << 0,
  /** to-pod of the responder admitted it (its ingress policy). */
  INGRESS_OK: 1 << 1,
  /** A reply was seen (TCP: the handshake completed). */
  SEEN_REPLY: 1 << 2,
  /** TCP FIN or RST seen: short lifetime. */
  CLOSING: 1 << 3,
} as const;

/** VEIL_CT_LIFETIME_* in seconds. */
export const CtLifetimeSeconds = { TCP_SYN: 60, TCP: 21600, TCP_CLOSING: 10, NON_TCP: 60 } as const;

/** Byte layouts of conntrack.h, checked against the objects' BTF by a privileged test. */
export const CONNTRACK_LAYOUTS: Record<'veil_ct4_key' | 'veil_ct6_key' | 'veil_ct_entry', StructLayout> = {
  veil_ct4_key: {
    name: 'veil_ct4_key',
    size: 16,
    fields: { saddr: { offset: 0, size: 4 }, daddr: { offset: 4, size: 4 }, sport: { offset: 8, size: 2 }, dport: { offset: 10, size: 2 }, proto: { offset: 12, size: 1 }, pad: { offset: 13, size: 3 } },
  },
  veil_ct6_key: {
    name: 'veil_ct6_key',
    size: 40,
    fields: { saddr: { offset: 0, size: 16 }, daddr: { offset: 16, size: 16 }, sport: { offset: 32, size: 2 }, dport: { offset: 34, size: 2 }, proto: { offset: 36, size: 1 }, pad: { offset: 37, size: 3 } },
  },
  veil_ct_entry: {
    name: 'veil_ct_entry',
    size: 24,
    fields: { expires_ns: { offset: 0, size: 8 }, src_identity: { offset: 8, size: 4 }, dst_identity: { offset: 12, size: 4 }, flags: { offset: 16, size: 1 }, pad: { offset: 17, size: 7 } },
  },
};

/**
 * A tracked connection's tuple, as the initiator sent it. Ports in host order; ICMP echo: the id
 * in sport, dport 0.
 */
export interface CtKey {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
}

export interface CtEntry {
  /** CLOCK_MONOTONIC(_COARSE) nanoseconds after which the programs ignore the entry. */
  expiresNs: bigint;
  srcIdentity: number;
  dstIdentity: number;
  /** CtFlags bits. */
  flags: number;
}

export function ctKeyCodec(family: IpFamily): Codec<CtKey> {
  const l = CONNTRACK_LAYOUTS[family === 4 ? 'veil_ct4_key' : 'veil_ct6_key'];
  const f = l.fields;
  const alen = family === 4 ? 4 : 16;
  return {
    size: l.size,
    encode(k, out, off) {
      out.fill(0, off, off + l.size);
      out.set(parseIp(checkIp('saddr', k.saddr, family).addr) as Uint8Array, off + f.saddr!.offset);
      out.set(parseIp(checkIp('daddr', k.daddr, family).addr) as Uint8Array, off + f.daddr!.offset);
      out.writeUInt16LE(checkInt('sport', k.sport, 0, 0xffff), off + f.sport!.offset);
      out.writeUInt16LE(checkInt('dport', k.dport, 0, 0xffff), off + f.dport!.offset);
      out.writeUInt8(checkInt('proto', k.proto, 0, 255), off + f.proto!.offset);
    },
    decode(buf, off) {
      return {
        saddr: formatIp(buf.subarray(off + f.saddr!.offset, off + f.saddr!.offset + alen)),
        daddr: formatIp(buf.subarray(off + f.daddr!.offset, off + f.daddr!.offset + alen)),
        sport: buf.readUInt16LE(off + f.sport!.offset),
        dport: buf.readUInt16LE(off + f.dport!.offset),
        proto: buf.readUInt8(off + f.proto!.offset),
      };
    },
  };
}

export const ctEntryCodec: Codec<CtEntry> = {
  size: CONNTRACK_LAYOUTS.veil_ct_entry.size,
  encode(v, out, off) {
    const f = CONNTRACK_LAYOUTS.veil_ct_entry.fields;
    if (typeof v.expiresNs !== 'bigint' || v.expiresNs < 0n) {
      throw new ValidationError('expiresNs', `Invalid expiresNs ${quote(v.expiresNs)}: give a non-negative bigint of CLOCK_MONOTONIC nanoseconds`);
    }
    out.fill(0, off, off + this.size);
    out.writeBigUInt64LE(v.expiresNs, off + f.expires_ns!.offset);
    out.writeUInt32LE(checkInt('srcIdentity', v.srcIdentity, 0, 0xffffffff), off + f.src_identity!.offset);
    out.writeUInt32LE(checkInt('dstIdentity', v.dstIdentity, 0, 0xffffffff), off + f.dst_identity!.offset);
    out.writeUInt8(checkInt('flags', v.flags, 0, 255), off + f.flags!.offset);
  },
  decode(buf, off) {
    const f = CONNTRACK_LAYOUTS.veil_ct_entry.fields;
    return {
      expiresNs: buf.readBigUInt64LE(off + f.expires_ns!.offset),
      srcIdentity: buf.readUInt32LE(off + f.src_identity!.offset),
      dstIdentity: buf.readUInt32LE(off + f.dst_identity!.offset),
      flags: buf.readUInt8(off + f.flags!.offset),
    };
  },
};

/** The clock of the entries' expiry (CLOCK_MONOTONIC; the programs read its coarse variant). */
export function monotonicNowNs(): bigint {
  return process.hrtime.bigint();
}

export interface Connection extends CtKey, CtEntry {
  family: IpFamily;
  /** Past its expiry at the time of listing: the programs ignore it, the sweep deletes it. */
  expired: boolean;
}

export class Conntrack {
  private constructor(private readonly maps: { 4: BpfMap<CtKey, CtEntry>; 6: BpfMap<CtKey, CtEntry> }) {}

  /** Opens both tables of a loaded object or a pin directory. */
  static async open(source: MapSource): Promise<Conntrack> {
    const [v4, v6] = await Promise.all([
      openShared(source, CONNTRACK_MAPS[4], ctKeyCodec(4), ctEntryCodec),
      openShared(source, CONNTRACK_MAPS[6], ctKeyCodec(6), ctEntryCodec),
    ]);
    return new Conntrack({ 4: v4, 6: v6 });
  }

  /** Every entry of both families, with whether it has expired at `now`. */
  async list(now: bigint = monotonicNowNs()): Promise<Connection[]> {
    const out: Connection[] = [];
    for (const family of [4, 6] as const) {
      for (const [k, v] of await this.maps[family].entries()) out.push({ family, ...k, ...v, expired: v.expiresNs <= now });
    }
    return out;
  }

  /** The entry of a tuple in its opening direction. */
  async get(family: IpFamily, key: CtKey): Promise<CtEntry | undefined> {
    return this.maps[family].get(key);
  }

  /** Deletes entries (absent ones are skipped); how many existed. */
  async deleteMany(family: IpFamily, keys: CtKey[]): Promise<BatchResult> {
    return this.maps[family].deleteMany(keys);
  }
}
