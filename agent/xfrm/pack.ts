/**
 * Packs validated policies into one Buffer of fixed-layout records for the addon. A batch of
 * 10,000 policies read field by field through N-API cost more than the kernel spent installing
 * them; read from one Buffer, the conversion is a memcpy per field. The layout is mirrored by
 * ReadPackedPolicies in native/src/xfrm.cc, which checks every length again.
 *
 * Policy record (little-endian, 60 bytes, then `ntmpl` template records):
 *   0  u8  selector family (4 or 6)     1  u8 srcLen      2  u8 dstLen    3  u8 proto
 *   4  u8  dir                          5  u8 action      6  u8 flags     7  u8 ntmpl
 *      flags: 1 sport set, 2 dport set, 4 mark set, 8 ifId set
 *   8  u16 sport                        10 u16 dport
 *   12 u32 priority   16 u32 mark value   20 u32 mark mask   24 u32 ifId
 *   28 16 bytes source address          44 16 bytes destination address
 * Template record (44 bytes):
 *   0  u8  flags: 1 src set, 2 dst set, 4 src is IPv6, 8 dst is IPv6
 *   1  u8  proto   2 u8 mode   3 u8 optional (0/1)
 *   4  u32 spi     8 u32 reqid   12 16 bytes src   28 16 bytes dst
 */
import type { WirePolicy } from './validate.js';

export const POLICY_RECORD = 60;
export const TEMPLATE_RECORD = 44;

/** Writes the 4 or 16 network-order bytes of a validated address at `off`. */
export function writeAddress(addr: string, buf: Buffer, off: number): void {
  if (!addr.includes(':')) {
    let part = 0;
    let v = 0;
    for (let i = 0; i <= addr.length; i++) {
      const c = i < addr.length ? addr.charCodeAt(i) : 46;
      if (c === 46) {
        buf[off + part++] = v;
        v = 0;
      } else {
        v = v * 10 + (c - 48);
      }
    }
    return;
  }
  // IPv6, possibly with "::" and a dotted IPv4 tail.
  const groups: number[] = [];
  const parse = (text: string): number[] => {
    if (text === '') return [];
    const out: number[] = [];
    for (const g of text.split(':')) {
      if (g.includes('.')) {
        const b = Buffer.alloc(4);
        writeAddress(g, b, 0);
        out.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const dbl = addr.indexOf('::');
  if (dbl < 0) {
    groups.push(...parse(addr));
  } else {
    const head = parse(addr.slice(0, dbl));
    const tail = parse(addr.slice(dbl + 2));
    groups.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  }
  for (let i = 0; i < 8; i++) buf.writeUInt16BE(groups[i] ?? 0, off + i * 2);
}

const isV6 = (a: string) => a.includes(':');

export function packPolicies(policies: readonly WirePolicy[]): Buffer {
  let size = 0;
  for (const p of policies) size += POLICY_RECORD + p.templates.length * TEMPLATE_RECORD;
  const buf = Buffer.alloc(size);
  let off = 0;
  for (const p of policies) {
    const s = p.selector;
    let flags = 0;
    if (s.sport !== undefined) flags |= 1;
    if (s.dport !== undefined) flags |= 2;
    if (p.mark) flags |= 4;
    if (p.ifId !== undefined) flags |= 8;
    buf[off] = isV6(s.src) ? 6 : 4;
    buf[off + 1] = s.srcLen;
    buf[off + 2] = s.dstLen;
    buf[off + 3] = s.proto ?? 0;
    buf[off + 4] = p.dir;
    buf[off + 5] = p.action;
    buf[off + 6] = flags;
    buf[off + 7] = p.templates.length;
    buf.writeUInt16LE(s.sport ?? 0, off + 8);
    buf.writeUInt16LE(s.dport ?? 0, off + 10);
    buf.writeUInt32LE(p.priority, off + 12);
    buf.writeUInt32LE(p.mark?.value ?? 0, off + 16);
    buf.writeUInt32LE(p.mark?.mask ?? 0, off + 20);
    buf.writeUInt32LE(p.ifId ?? 0, off + 24);
    writeAddress(s.src, buf, off + 28);
    writeAddress(s.dst, buf, off + 44);
    off += POLICY_RECORD;
    for (const t of p.templates) {
      let tf = 0;
      if (t.src !== undefined) tf |= 1 | (isV6(t.src) ? 4 : 0);
      if (t.dst !== undefined) tf |= 2 | (isV6(t.dst) ? 8 : 0);
      buf[off] = tf;
      buf[off + 1] = t.proto;
      buf[off + 2] = t.mode;
      buf[off + 3] = t.optional ? 1 : 0;
      buf.writeUInt32LE(t.spi, off + 4);
      buf.writeUInt32LE(t.reqid, off + 8);
      if (t.src !== undefined) writeAddress(t.src, buf, off + 12);
      if (t.dst !== undefined) writeAddress(t.dst, buf, off + 28);
      off += TEMPLATE_RECORD;
    }
  }
  return buf;
}
