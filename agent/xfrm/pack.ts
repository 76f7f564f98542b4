/**
 * Validates policies and packs them into one Buffer of fixed-layout records for the addon, in
 * one pass and without building an intermediate object per policy. A batch of 10,000 policies
 * read field by field through N-API cost more than the kernel spent installing them, and
 * validating into plain objects first (field names, selectors, templates) cost as much again in
 * allocation and garbage collection. The layout is mirrored by PackedPoliciesArg in
 * native/src/xfrm.cc, which checks every length again.
 *
 * Every policy first meets a fast check that writes its record directly. It accepts only shapes
 * it is sure of; anything else goes to policyConfig() (validate.ts), the one definition of what
 * is valid, which throws the precise ValidationError or returns the policy to pack. So the fast
 * path never changes what is accepted, what is rejected, or the message (tests/unit/xfrm checks
 * both paths against each other on random input).
 *
 * Policy record (host byte order, 60 bytes, then `ntmpl` template records):
 *   0  u8  selector family (4 or 6)     1  u8 srcLen      2  u8 dstLen    3  u8 proto
 *   4  u8  dir                          5  u8 action      6  u8 flags     7  u8 ntmpl
 *      flags: 1 sport set, 2 dport set, 4 mark set, 8 ifId set
 *   8  u16 sport                        10 u16 dport
 *   12 u32 priority   16 u32 mark value   20 u32 mark mask   24 u32 ifId
 *   28 16 bytes source address          44 16 bytes destination address   (network order)
 * Template record (44 bytes):
 *   0  u8  flags: 1 src set, 2 dst set, 4 src is IPv6, 8 dst is IPv6
 *   1  u8  proto   2 u8 mode   3 u8 optional (0/1)
 *   4  u32 spi     8 u32 reqid   12 16 bytes src   28 16 bytes dst
 */
import { ipFamily, parseIpInto, parsePrefixLen } from '../net/ip.js';
import {
  ACTION_NUMBERS,
  DIR_NUMBERS,
  IPPROTO_ESP,
  MAX_TEMPLATES,
  MODE_NUMBERS,
  SELECTOR_PROTOS,
  invalid,
  policyConfig,
  type WirePolicy,
} from './validate.js';

export const POLICY_RECORD = 60;
export const TEMPLATE_RECORD = 44;
const U32_MAX = 0xffffffff;
/** Protocols whose selectors carry ports (as validate.ts). */
const PORT_PROTOS = new Set([6, 17, 33, 132, 136]);

export interface PackedPolicies {
  buffer: Buffer;
  count: number;
}

/** A growable zero-filled byte buffer with 16- and 32-bit views (records are 4-byte aligned). */
class Records {
  bytes: Uint8Array;
  u16: Uint16Array;
  u32: Uint32Array;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.u16 = new Uint16Array(this.bytes.buffer, 0, size >> 1);
    this.u32 = new Uint32Array(this.bytes.buffer, 0, size >> 2);
  }
  /** Makes room for `need` bytes from `off` (the bytes past `off` are zero). */
  ensure(off: number, need: number): void {
    if (off + need <= this.bytes.length) return;
    const grown = new Records(Math.max(this.bytes.length * 2, off + need));
    grown.bytes.set(this.bytes.subarray(0, off));
    this.bytes = grown.bytes;
    this.u16 = grown.u16;
    this.u32 = grown.u32;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= U32_MAX;

/**
 * "addr/len" or a bare address (as validate.ts's prefix()): writes the address at `off` and
 * returns family * 256 + length, or -1 when the fast check is not sure.
 */
function fastPrefix(v: unknown, bytes: Uint8Array, off: number): number {
  if (typeof v !== 'string') return -1;
  const slash = v.indexOf('/');
  const fam = parseIpInto(v, bytes, off, 0, slash < 0 ? v.length : slash);
  if (fam === 0) return -1;
  const max = fam === 4 ? 32 : 128;
  const len = slash < 0 ? max : parsePrefixLen(v, slash + 1, v.length, max);
  return len < 0 ? -1 : fam * 256 + len;
}

/** A template address (validate.ts's address()): its family after writing it at `off`, or 0. */
function fastAddress(v: unknown, bytes: Uint8Array, off: number): 0 | 4 | 6 {
  return typeof v === 'string' ? parseIpInto(v, bytes, off) : 0;
}

/**
 * Writes policy `v` at `off` when the fast check accepts it; returns the offset after its
 * records, or -1 (the caller then zeroes what was written and asks policyConfig()).
 */
function packFast(v: unknown, r: Records, off: number): number {
  if (!isObject(v)) return -1;
  const sel = v.selector;
  if (!isObject(sel)) return -1;
  const templates = v.templates ?? [];
  if (!Array.isArray(templates) || templates.length > MAX_TEMPLATES) return -1;
  r.ensure(off, POLICY_RECORD + templates.length * TEMPLATE_RECORD);
  const { bytes, u16, u32 } = r;
  const src = fastPrefix(sel.src, bytes, off + 28);
  const dst = fastPrefix(sel.dst, bytes, off + 44);
  if (src < 0 || dst < 0 || src >> 8 !== dst >> 8) return -1;
  const family = src >> 8;
  let flags = 0;
  let proto = -1;
  const p = sel.proto;
  if (p !== undefined) {
    if (typeof p === 'number' && Number.isInteger(p) && p >= 0 && p <= 255) proto = p;
    else if (typeof p === 'string' && Object.hasOwn(SELECTOR_PROTOS, p)) proto = SELECTOR_PROTOS[p]!;
    else return -1;
  }
  const ports = proto >= 0 && PORT_PROTOS.has(proto);
  const sport = sel.sport;
  if (sport !== undefined) {
    if (!ports || typeof sport !== 'number' || !Number.isInteger(sport) || sport < 0 || sport > 65535) return -1;
    flags |= 1;
    u16[(off + 8) >> 1] = sport;
  }
  const dport = sel.dport;
  if (dport !== undefined) {
    if (!ports || typeof dport !== 'number' || !Number.isInteger(dport) || dport < 0 || dport > 65535) return -1;
    flags |= 2;
    u16[(off + 10) >> 1] = dport;
  }
  const dir = v.dir;
  if (dir !== 'in' && dir !== 'out' && dir !== 'fwd') return -1;
  const action = v.action;
  if (action !== undefined && action !== 'allow' && action !== 'block') return -1;
  const priority = v.priority;
  if (priority !== undefined) {
    if (!isU32(priority)) return -1;
    u32[(off + 12) >> 2] = priority;
  }
  const mark = v.mark;
  if (mark !== undefined) {
    if (!isObject(mark) || !isU32(mark.value) || (mark.mask !== undefined && !isU32(mark.mask))) return -1;
    flags |= 4;
    u32[(off + 16) >> 2] = mark.value;
    u32[(off + 20) >> 2] = mark.mask ?? U32_MAX;
  }
  const ifId = v.ifId;
  if (ifId !== undefined) {
    if (!isU32(ifId) || ifId < 1) return -1;
    flags |= 8;
    u32[(off + 24) >> 2] = ifId;
  }
  bytes[off] = family;
  bytes[off + 1] = src & 255;
  bytes[off + 2] = dst & 255;
  bytes[off + 3] = proto < 0 ? 0 : proto;
  bytes[off + 4] = DIR_NUMBERS[dir];
  bytes[off + 5] = action === 'block' ? ACTION_NUMBERS.block : ACTION_NUMBERS.allow;
  bytes[off + 6] = flags;
  bytes[off + 7] = templates.length;
  let t = off + POLICY_RECORD;
  for (let k = 0; k < templates.length; k++, t += TEMPLATE_RECORD) {
    const tm: unknown = templates[k];
    if (!isObject(tm)) return -1;
    const m = tm.mode;
    if (m !== undefined && m !== 'tunnel' && m !== 'transport') return -1;
    const mode = m === 'transport' ? MODE_NUMBERS.transport : MODE_NUMBERS.tunnel;
    if ((tm.spi !== undefined && !isU32(tm.spi)) || (tm.reqid !== undefined && !isU32(tm.reqid))) return -1;
    if (tm.proto !== undefined && tm.proto !== 'esp') return -1;
    if (tm.optional !== undefined && typeof tm.optional !== 'boolean') return -1;
    let tf = 0;
    let srcFam = 0;
    let dstFam = 0;
    if (tm.src !== undefined) {
      srcFam = fastAddress(tm.src, bytes, t + 12);
      if (srcFam === 0) return -1;
      tf |= srcFam === 6 ? 1 | 4 : 1;
    }
    if (tm.dst !== undefined) {
      dstFam = fastAddress(tm.dst, bytes, t + 28);
      if (dstFam === 0) return -1;
      tf |= dstFam === 6 ? 2 | 8 : 2;
    }
    if (mode === MODE_NUMBERS.tunnel && (srcFam === 0 || dstFam === 0)) return -1;
    if (srcFam !== 0 && dstFam !== 0 && srcFam !== dstFam) return -1;
    if (mode === MODE_NUMBERS.transport) {
      const a = dstFam || srcFam;
      if (a !== 0 && a !== family) return -1;
    }
    bytes[t] = tf;
    bytes[t + 1] = IPPROTO_ESP;
    bytes[t + 2] = mode;
    bytes[t + 3] = tm.optional === true ? 1 : 0;
    u32[(t + 4) >> 2] = (tm.spi as number | undefined) ?? 0;
    u32[(t + 8) >> 2] = (tm.reqid as number | undefined) ?? 0;
  }
  return t;
}

/** Writes a policy that policyConfig() validated at `off` (zeroed); returns the offset after it. */
function packWire(p: WirePolicy, r: Records, off: number): number {
  r.ensure(off, POLICY_RECORD + p.templates.length * TEMPLATE_RECORD);
  const { bytes, u16, u32 } = r;
  const s = p.selector;
  let flags = 0;
  if (s.sport !== undefined) flags |= 1;
  if (s.dport !== undefined) flags |= 2;
  if (p.mark) flags |= 4;
  if (p.ifId !== undefined) flags |= 8;
  bytes[off] = ipFamily(s.src);
  bytes[off + 1] = s.srcLen;
  bytes[off + 2] = s.dstLen;
  bytes[off + 3] = s.proto ?? 0;
  bytes[off + 4] = p.dir;
  bytes[off + 5] = p.action;
  bytes[off + 6] = flags;
  bytes[off + 7] = p.templates.length;
  u16[(off + 8) >> 1] = s.sport ?? 0;
  u16[(off + 10) >> 1] = s.dport ?? 0;
  u32[(off + 12) >> 2] = p.priority;
  u32[(off + 16) >> 2] = p.mark?.value ?? 0;
  u32[(off + 20) >> 2] = p.mark?.mask ?? 0;
  u32[(off + 24) >> 2] = p.ifId ?? 0;
  parseIpInto(s.src, bytes, off + 28);
  parseIpInto(s.dst, bytes, off + 44);
  let t = off + POLICY_RECORD;
  for (const tm of p.templates) {
    let tf = 0;
    if (tm.src !== undefined) tf |= parseIpInto(tm.src, bytes, t + 12) === 6 ? 1 | 4 : 1;
    if (tm.dst !== undefined) tf |= parseIpInto(tm.dst, bytes, t + 28) === 6 ? 2 | 8 : 2;
    bytes[t] = tf;
    bytes[t + 1] = tm.proto;
    bytes[t + 2] = tm.mode;
    bytes[t + 3] = tm.optional ? 1 : 0;
    u32[(t + 4) >> 2] = tm.spi;
    u32[(t + 8) >> 2] = tm.reqid;
    t += TEMPLATE_RECORD;
  }
  return t;
}

/**
 * Validates `policies` (the argument of addPolicies / updatePolicies / encodePolicies, named
 * "policies" in errors) and packs them. Throws the ValidationError policyConfig() would.
 */
export function packPolicies(policies: unknown): PackedPolicies {
  if (!Array.isArray(policies)) throw invalid('policies', typeof policies, 'pass an array');
  // One template per policy is the common shape; Records grows for more.
  const r = new Records(policies.length * (POLICY_RECORD + TEMPLATE_RECORD));
  let off = 0;
  for (let i = 0; i < policies.length; i++) {
    const v: unknown = policies[i];
    const end = packFast(v, r, off);
    if (end >= 0) {
      off = end;
      continue;
    }
    // packFast wrote at most one policy with MAX_TEMPLATES templates past `off`.
    r.bytes.fill(0, off, Math.min(r.bytes.length, off + POLICY_RECORD + MAX_TEMPLATES * TEMPLATE_RECORD));
    off = packWire(policyConfig(v, `policies[${i}]`), r, off);
  }
  return { buffer: Buffer.from(r.bytes.buffer, 0, off), count: policies.length };
}

/** The slow path alone (policyConfig() then packing), for tests comparing it with packPolicies(). */
export function packPoliciesChecked(policies: readonly unknown[]): PackedPolicies {
  const r = new Records(POLICY_RECORD);
  let off = 0;
  for (let i = 0; i < policies.length; i++) off = packWire(policyConfig(policies[i], `policies[${i}]`), r, off);
  return { buffer: Buffer.from(r.bytes.buffer, 0, off), count: policies.length };
}
