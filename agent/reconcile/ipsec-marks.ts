/**
 * The skb marks the IPsec reconciler writes into XFRM states and policies, in the one layout of
 * bpf/include/veil/marks.h (a unit test reads that header and compares every constant):
 *
 *   31            16 15    12 11     8 7      4 3      0
 *  |    identity    | (free) | purpose|key slot| (free) |
 *
 * - encrypt mark (purpose 0xE): set by from-pod on a packet XFRM must encrypt; identity = the
 *   sending pod's identity (0 in per-node-pair mode), key slot = the slot of the SA to use.
 * - decrypted mark (purpose 0xD): set by an inbound SA (XFRMA_SET_MARK) on what it decrypted;
 *   identity = the sender's identity, authenticated by the SA's key.
 *
 * The datapath's own mirror of marks.h (agent/datapath/marks.ts) is owned by the datapath; this
 * file holds only what XFRM needs and checks the same header.
 */
import { ValidationError } from '../errors.js';
import { quote } from '../net/ip.js';

export const MARK_PURPOSE_MASK = 0x00000f00;
export const MARK_IDENTITY_MASK = 0xffff0000;
export const MARK_IDENTITY_SHIFT = 16;
export const MARK_KEY_SLOT_MASK = 0x000000f0;
export const MARK_KEY_SLOT_SHIFT = 4;
/** The bits Veil owns; XFRM states and policies match marks with this mask. */
export const MARK_MATCH_MASK = 0xffff0ff0;
export const MARK_ENCRYPT = 0x00000e00;
export const MARK_DECRYPTED = 0x00000d00;

/** Number of key slots (4 bits). */
export const KEY_SLOTS = 16;

function check(identity: number, slot: number): void {
  if (!Number.isInteger(identity) || identity < 0 || identity > 0xffff) {
    throw new ValidationError('identity', `Invalid identity ${quote(identity)}: use 0 (node key) or an identity id from 1 to 65535`);
  }
  if (!Number.isInteger(slot) || slot < 0 || slot >= KEY_SLOTS) {
    throw new ValidationError('slot', `Invalid key slot ${quote(slot)}: use an integer from 0 to ${KEY_SLOTS - 1}`);
  }
}

/** The encrypt mark for `identity` and `slot` (what from-pod writes, what out policies match). */
export function encryptMark(identity: number, slot: number): { value: number; mask: number } {
  check(identity, slot);
  return { value: ((identity << MARK_IDENTITY_SHIFT) | MARK_ENCRYPT | (slot << MARK_KEY_SLOT_SHIFT)) >>> 0, mask: MARK_MATCH_MASK };
}

/** The decrypted mark an inbound SA sets on what it decrypted (XFRMA_SET_MARK). */
export function decryptedMark(identity: number, slot: number): { value: number; mask: number } {
  check(identity, slot);
  return { value: ((identity << MARK_IDENTITY_SHIFT) | MARK_DECRYPTED | (slot << MARK_KEY_SLOT_SHIFT)) >>> 0, mask: MARK_MATCH_MASK };
}

/** Any encrypt mark, whatever identity and slot: what the lowest-priority block policy matches. */
export const ANY_ENCRYPT_MARK = { value: MARK_ENCRYPT, mask: MARK_PURPOSE_MASK } as const;

/** Reads (purpose, identity, slot) back from a mark value. */
export function decodeMark(value: number): { purpose: number; identity: number; slot: number } {
  return {
    purpose: value & MARK_PURPOSE_MASK,
    identity: (value >>> MARK_IDENTITY_SHIFT) & 0xffff,
    slot: (value & MARK_KEY_SLOT_MASK) >>> MARK_KEY_SLOT_SHIFT,
  };
}

/**
 * The key slot of an SA whose sender contributes key generation `senderGeneration` and whose
 * receiver contributes `receiverGeneration`: (sender mod 4) * 4 + (receiver mod 4). Both ends
 * compute it alike. SAs that coexist during rotations differ in it as long as fewer than 4
 * generations of either key are held at once (a rotation holds 2): rotating the sender's key and
 * the receiver's key at the same time gives 4 SAs with 4 different slots, which a sum of the
 * generations would not.
 */
export function keySlot(senderGeneration: number, receiverGeneration: number): number {
  return ((senderGeneration % 4) << 2) | (receiverGeneration % 4);
}
