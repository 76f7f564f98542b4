/**
 * Which SPI an SA uses, computable by both of its ends (docs/keys.md §SPI allocation,
 * docs/ipsec.md §SPIs).
 *
 * The SPI request of agent/keys/spi.ts names (sender identity, sender node, generation,
 * direction). An SA's key changes whenever either end's key generation, boot id, public key or
 * the AEAD changes, and its SPI must change with it (a new key under an old SPI makes the
 * receiver fail with XfrmInStateProtoError, LESSONS.md §IPsec). So the request's "generation"
 * is the SA's epoch: the first 32 bits of SHA-256 over everything the key depends on except the
 * sender's identity and node, which the request carries itself. The receiver allocates it in its
 * table (SpiAllocator: the candidate, or the next free SPI on a collision); the sender uses the
 * candidate. A collision at the receiver therefore shows up as a receiver SPI that differs from
 * the candidate, which the reconciler reports (the node record has no field to publish it yet).
 */
import { createHash } from 'node:crypto';
import type { IpsecAead, SaParty } from '../keys/ipsec-derive.js';
import type { SpiRequest } from '../keys/spi.js';

/** The SA's epoch (u32): changes with anything its key depends on. */
export function saEpoch(sender: SaParty, receiver: SaParty, aead: IpsecAead, saGeneration: number): number {
  const h = createHash('sha256').update('veil/ipsec-sa-epoch/v1\0').update(aead).update('\0');
  for (const p of [sender, receiver]) {
    h.update(`${p.node}\0${p.identity}\0${p.keyGeneration}\0${p.bootId}\0`).update(p.publicKey.raw);
  }
  h.update(`\0${saGeneration}`);
  return h.digest().readUInt32BE(0);
}

/** The SPI request of the SA from `sender` to `receiver` (the receiver allocates it). */
export function saSpiRequest(sender: SaParty, receiver: SaParty, aead: IpsecAead, saGeneration: number): SpiRequest {
  return { senderIdentity: sender.identity, senderNode: sender.node, generation: saEpoch(sender, receiver, aead, saGeneration), direction: 'in' };
}
