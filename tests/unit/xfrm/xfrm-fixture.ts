/**
 * Expected XFRM netlink structures, spelled out field by field from /usr/include/linux/xfrm.h
 * (x86_64 layout, offsets computed by hand from the header), for byte-exact encoder tests and
 * for feeding the parsers. Independent of the addon: a wrong offset there fails here.
 */
import { Struct, ipBytes } from '../../support/nl-fixture.js';

export const XFRM_MSG = {
  NEWSA: 0x10,
  DELSA: 0x11,
  GETSA: 0x12,
  NEWPOLICY: 0x13,
  DELPOLICY: 0x14,
  GETPOLICY: 0x15,
  UPDPOLICY: 0x19,
  UPDSA: 0x1a,
  FLUSHSA: 0x1c,
  FLUSHPOLICY: 0x1d,
} as const;

export const XFRMA = {
  ALG_AUTH: 1,
  ALG_CRYPT: 2,
  TMPL: 5,
  LTIME_VAL: 9,
  REPLAY_VAL: 10,
  LASTUSED: 15,
  POLICY_TYPE: 16,
  ALG_AEAD: 18,
  MARK: 21,
  REPLAY_ESN_VAL: 23,
  SA_EXTRA_FLAGS: 24,
  SET_MARK: 29,
  SET_MARK_MASK: 30,
  IF_ID: 31,
} as const;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const INF = 0xffffffffffffffffn;

const fam = (addr: string) => (addr.includes(':') ? AF_INET6 : AF_INET);

/** struct xfrm_selector (56 bytes). */
export interface SelFields {
  src?: string;
  dst?: string;
  srcLen?: number;
  dstLen?: number;
  family?: number;
  proto?: number;
  sport?: number;
  dport?: number;
  ifindex?: number;
}
export function selector(s: Struct, off: number, f: SelFields): void {
  if (f.dst) s.bytes(off + 0, ipBytes(f.dst)); // daddr
  if (f.src) s.bytes(off + 16, ipBytes(f.src)); // saddr
  if (f.dport !== undefined) s.u16be(off + 32, f.dport).u16(off + 34, 0xffff); // dport, dport_mask
  if (f.sport !== undefined) s.u16be(off + 36, f.sport).u16(off + 38, 0xffff); // sport, sport_mask
  s.u16(off + 40, f.family ?? (f.src ? fam(f.src) : 0)); // family
  s.u8(off + 42, f.dstLen ?? 0); // prefixlen_d
  s.u8(off + 43, f.srcLen ?? 0); // prefixlen_s
  s.u8(off + 44, f.proto ?? 0); // proto
  s.i32(off + 48, f.ifindex ?? 0); // ifindex (after 3 bytes of padding)
  // user @52 stays 0
}

/** struct xfrm_lifetime_cfg (64 bytes): unlimited bytes/packets, no expiry, unless given. */
export function lifetimeCfg(s: Struct, off: number, l: bigint[] = [INF, INF, INF, INF, 0n, 0n, 0n, 0n]): void {
  l.forEach((v, i) => s.u64(off + i * 8, v));
}

/** struct xfrm_usersa_info (224 bytes). */
export interface SaFields {
  sel: SelFields;
  src: string;
  dst: string;
  spi: number;
  proto?: number;
  lft?: bigint[];
  cur?: { bytes: bigint; packets: bigint; addTime: bigint; useTime: bigint };
  stats?: { replayWindow: number; replay: number; integrityFailed: number };
  reqid: number;
  mode: number;
  replayWindow: number;
  flags: number;
}
export function usersaInfo(f: SaFields): Buffer {
  const s = new Struct(224);
  selector(s, 0, f.sel);
  s.bytes(56, ipBytes(f.dst)).u32be(72, f.spi).u8(76, f.proto ?? 50); // id: daddr, spi, proto
  s.bytes(80, ipBytes(f.src)); // saddr
  lifetimeCfg(s, 96, f.lft);
  if (f.cur) s.u64(160, f.cur.bytes).u64(168, f.cur.packets).u64(176, f.cur.addTime).u64(184, f.cur.useTime);
  if (f.stats) s.u32(192, f.stats.replayWindow).u32(196, f.stats.replay).u32(200, f.stats.integrityFailed);
  s.u32(208, f.reqid); // reqid (seq @204 stays 0)
  s.u16(212, fam(f.dst)); // family
  s.u8(214, f.mode).u8(215, f.replayWindow).u8(216, f.flags);
  return s.buf;
}

/** struct xfrm_algo_aead + key (72 + n bytes). */
export function algoAead(name: string, key: Buffer, icvBits: number): Buffer {
  const s = new Struct(72 + key.length);
  s.bytes(0, Buffer.from(name)).u32(64, key.length * 8).u32(68, icvBits).bytes(72, key);
  return s.buf;
}

/** struct xfrm_replay_state_esn with a zeroed bitmap of ceil(window/32) words. */
export function replayEsn(window: number, seq: { oseq?: number; seq?: number; oseqHi?: number; seqHi?: number } = {}): Buffer {
  const words = Math.ceil(window / 32);
  const s = new Struct(24 + words * 4);
  s.u32(0, words).u32(4, seq.oseq ?? 0).u32(8, seq.seq ?? 0).u32(12, seq.oseqHi ?? 0).u32(16, seq.seqHi ?? 0).u32(20, window);
  return s.buf;
}

/** struct xfrm_mark (8 bytes). */
export function xmark(v: number, m: number): Buffer {
  return new Struct(8).u32(0, v).u32(4, m).buf;
}

/** struct xfrm_usersa_id (24 bytes). */
export function usersaId(dst: string, spi: number, proto = 50): Buffer {
  return new Struct(24).bytes(0, ipBytes(dst)).u32be(16, spi).u16(20, fam(dst)).u8(22, proto).buf;
}

/** struct xfrm_user_tmpl (64 bytes). */
export interface TmplFields {
  src?: string;
  dst?: string;
  family: number;
  spi?: number;
  reqid: number;
  mode: number;
  optional?: boolean;
  algos?: number;
}
export function userTmpl(t: TmplFields): Buffer {
  const s = new Struct(64);
  if (t.dst) s.bytes(0, ipBytes(t.dst));
  s.u32be(16, t.spi ?? 0).u8(20, 50); // id.spi, id.proto
  s.u16(24, t.family);
  if (t.src) s.bytes(28, ipBytes(t.src));
  s.u32(44, t.reqid).u8(48, t.mode).u8(50, t.optional ? 1 : 0); // reqid, mode, (share @49), optional
  const algos = t.algos ?? 0xffffffff;
  s.u32(52, algos).u32(56, algos).u32(60, algos); // aalgos, ealgos, calgos
  return s.buf;
}

/** struct xfrm_userpolicy_info (168 bytes). */
export function userpolicyInfo(f: { sel: SelFields; priority: number; index?: number; dir: number; action: number }): Buffer {
  const s = new Struct(168);
  selector(s, 0, f.sel);
  lifetimeCfg(s, 56);
  s.u32(152, f.priority).u32(156, f.index ?? 0).u8(160, f.dir).u8(161, f.action); // flags @162, share @163
  return s.buf;
}

/** struct xfrm_userpolicy_id (64 bytes). */
export function userpolicyId(sel: SelFields | null, dir: number, index = 0): Buffer {
  const s = new Struct(64);
  if (sel) selector(s, 0, sel);
  s.u32(56, index).u8(60, dir);
  return s.buf;
}
