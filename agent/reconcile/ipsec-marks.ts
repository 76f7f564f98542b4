/**
 * The skb marks the IPsec reconciler writes into XFRM states and policies, built on the one
 * mirror of bpf/include/veil/marks.h (agent/datapath/marks.ts, tested against the header):
 *
 * - encrypt mark (purpose 0xE): set by from-pod on a packet XFRM must encrypt; identity = the
 *   sending pod's identity (0 in per-node-pair mode), key slot = the slot of the SA to use.
 * - decrypted mark (purpose 0xD): set by an inbound SA (XFRMA_SET_MARK) on what it decrypted;
 *   identity = the sender's identity, authenticated by the SA's key.
 *
 * XFRM matches both with MARK_MATCH_MASK, so bits Veil does not own never select an SA.
 */
import { MARK_MATCH_MASK, MARK_PURPOSE_MASK, MarkPurpose, encodeMark } from '../datapath/marks.js';
import { ValidationError } from '../errors.js';
import { quote } from '../net/ip.js';

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
  return { value: encodeMark({ purpose: MarkPurpose.ENCRYPT, identity, keySlot: slot }), mask: MARK_MATCH_MASK };
}

/** The decrypted mark an inbound SA sets on what it decrypted (XFRMA_SET_MARK). */
export function decryptedMark(identity: number, slot: number): { value: number; mask: number } {
  check(identity, slot);
  return { value: encodeMark({ purpose: MarkPurpose.DECRYPTED, identity, keySlot: slot }), mask: MARK_MATCH_MASK };
}

/** Any encrypt mark, whatever identity and slot: what the lowest-priority block policy matches. */
export const ANY_ENCRYPT_MARK = { value: MarkPurpose.ENCRYPT, mask: MARK_PURPOSE_MASK } as const;

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
