/**
 * The skb->mark layout, mirroring bpf/include/veil/marks.h (a unit test parses the header and
 * compares). Layout: identity in bits 16-31, purpose in bits 8-11, key slot in bits 4-7; bits
 * 12-15 and 0-3 are never Veil's (kube-proxy and others use them). docs/datapath.md §Marks.
 */
export const MARK_PURPOSE_MASK = 0x00000f00;
export const MARK_PURPOSE_SHIFT = 8;
export const MARK_IDENTITY_MASK = 0xffff0000;
export const MARK_IDENTITY_SHIFT = 16;
export const MARK_KEY_SLOT_MASK = 0x000000f0;
export const MARK_KEY_SLOT_SHIFT = 4;
/** The bits Veil owns; XFRM policies and states match marks with this mask. */
export const MARK_MATCH_MASK = 0xffff0ff0;

/** Purposes, already shifted into bits 8-11. */
export const MarkPurpose = {
  /** from-pod: XFRM must encrypt this packet (identity = sender, key slot = destination's). */
  ENCRYPT: 0x00000e00,
  /** Set by an inbound SA on the packet it decrypted (identity authenticated by the key). */
  DECRYPTED: 0x00000d00,
  /** The WireGuard device's fwmark for its own encrypted UDP packets. */
  WIREGUARD: 0x00000a00,
} as const;
export type MarkPurposeName = keyof typeof MarkPurpose;

export interface Mark {
  purpose: number;
  identity: number;
  keySlot: number;
}

/** Builds a mark; identity 0..65535, key slot 0..15 (checked: a wrong value would alias). */
export function encodeMark(m: Mark): number {
  if (!Number.isInteger(m.identity) || m.identity < 0 || m.identity > 0xffff) throw new RangeError(`Mark identity ${m.identity} is outside 0..65535`);
  if (!Number.isInteger(m.keySlot) || m.keySlot < 0 || m.keySlot > 15) throw new RangeError(`Mark key slot ${m.keySlot} is outside 0..15`);
  if ((m.purpose & ~MARK_PURPOSE_MASK) !== 0) throw new RangeError(`Mark purpose 0x${m.purpose.toString(16)} has bits outside 0x${MARK_PURPOSE_MASK.toString(16)}`);
  return ((m.identity << MARK_IDENTITY_SHIFT) | m.purpose | (m.keySlot << MARK_KEY_SLOT_SHIFT)) >>> 0;
}

/** Splits a mark into its fields; bits Veil does not own are ignored. */
export function decodeMark(mark: number): Mark {
  return {
    purpose: (mark & MARK_PURPOSE_MASK) >>> 0,
    identity: (mark & MARK_IDENTITY_MASK) >>> MARK_IDENTITY_SHIFT,
    keySlot: (mark & MARK_KEY_SLOT_MASK) >>> MARK_KEY_SLOT_SHIFT,
  };
}
