/**
 * Keys for IPsec (ESP) security associations, derived — never shared cluster-wide.
 *
 *   secret = X25519(local private key, remote public key)          (all-zero secrets refused)
 *   key    = HKDF-SHA256(ikm = secret, salt = IPSEC_HKDF_SALT, info = ipsecKeyInfo(...), L)
 *
 * `info` binds everything that must make two SAs' keys differ (LESSONS.md §IPsec: a key reused
 * with a sequence counter that restarts repeats nonces):
 *   - a domain label and version ("veil/ipsec-sa/v1"), so no other use of the same X25519 pair
 *     can produce this key;
 *   - the AEAD, so one secret never keys two algorithms;
 *   - the direction, as the ordered pair (sender, receiver): A→B and B→A get different keys even
 *     when both ends use node keys (per-node-pair mode), where the X25519 secret is symmetric;
 *   - for each party: node name, identity id (0 = the node key itself), the generation of the
 *     key it contributes, its boot id (fresh keys after a reboot, CVE-2024-28860) and its public
 *     key (no key substitution);
 *   - the SA generation (bumped on every rekey, e.g. before the ESP sequence number runs out).
 * Fields are length-prefixed (u16 for text, u32 big-endian for numbers), so no two different
 * tuples encode to the same bytes.
 *
 * The sender derives with (its private key, the receiver's public key), the receiver with (its
 * private key, the sender's public key): X25519 makes the secrets equal, and both build the same
 * info from the same (sender, receiver) tuple, so A's outbound key equals B's inbound key.
 *
 * Output length is the kernel's key length for the AEAD: rfc4106(gcm(aes)) with AES-256 takes
 * 32 key bytes + 4 salt bytes = 36 (ICV 16); rfc7539esp(chacha20,poly1305) takes 32 + 4 = 36 too.
 */
import { hkdfSync } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { quote } from '../net/ip.js';
import { x25519SharedSecret, type X25519PrivateKey, type X25519PublicKey } from './x25519.js';

export type IpsecAead = 'rfc4106(gcm(aes))' | 'rfc7539esp(chacha20,poly1305)';

/** Key bytes the kernel expects for each AEAD (key + 4-byte salt/nonce prefix). */
export const IPSEC_AEAD_KEY_BYTES: Readonly<Record<IpsecAead, number>> = {
  'rfc4106(gcm(aes))': 36,
  'rfc7539esp(chacha20,poly1305)': 36,
};
/** ICV (tag) length in bits the kernel is given with each AEAD. */
export const IPSEC_AEAD_ICV_BITS: Readonly<Record<IpsecAead, number>> = {
  'rfc4106(gcm(aes))': 128,
  'rfc7539esp(chacha20,poly1305)': 128,
};

export const IPSEC_HKDF_SALT = Buffer.from('veil/ipsec-sa/salt/v1');
export const IPSEC_INFO_LABEL = 'veil/ipsec-sa/v1';

/** One end of an SA. */
export interface SaParty {
  /** Node name (as in its node record). */
  node: string;
  /** Identity id whose key this party contributes; 0 when it contributes its node key. */
  identity: number;
  /** Generation of the key this party contributes. */
  keyGeneration: number;
  /** The party's boot id (/proc/sys/kernel/random/boot_id). */
  bootId: string;
  /** The party's contributed X25519 public key. */
  publicKey: X25519PublicKey;
}

export interface IpsecKeyParams {
  sender: SaParty;
  receiver: SaParty;
  /** SA generation: bumped on every rekey of this (sender, receiver) pair. */
  generation: number;
  aead: IpsecAead;
}

export interface IpsecSaKey {
  aead: IpsecAead;
  /** Key material for the kernel (XFRMA_ALG_AEAD); secret. */
  key: Buffer;
  icvBits: number;
}

const MAX_TEXT = 253;

function checkText(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > MAX_TEXT) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: use 1 to ${MAX_TEXT} bytes of text`);
  }
  return v;
}

function checkU32(v: unknown, field: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 0xffffffff) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: use an integer from ${min} to 4294967295`);
  }
  return v;
}

function checkAead(v: unknown): IpsecAead {
  if (typeof v !== 'string' || !Object.hasOwn(IPSEC_AEAD_KEY_BYTES, v)) {
    throw new ValidationError('aead', `Invalid aead ${quote(v)}: use one of ${Object.keys(IPSEC_AEAD_KEY_BYTES).map((a) => `"${a}"`).join(', ')}`);
  }
  return v as IpsecAead;
}

class InfoWriter {
  private parts: Buffer[] = [];
  text(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    this.parts.push(len, b);
    return this;
  }
  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    this.parts.push(b);
    return this;
  }
  bytes(b: Buffer): this {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    this.parts.push(len, b);
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function party(w: InfoWriter, p: SaParty, field: string): void {
  if (typeof p !== 'object' || p === null) throw new ValidationError(field, `Invalid ${field}: expected an object with node, identity, keyGeneration, bootId and publicKey`);
  w.text(checkText(p.node, `${field}.node`));
  w.u32(checkU32(p.identity, `${field}.identity`));
  w.u32(checkU32(p.keyGeneration, `${field}.keyGeneration`));
  w.text(checkText(p.bootId, `${field}.bootId`));
  if (!p.publicKey?.raw || p.publicKey.raw.length !== 32) {
    throw new ValidationError(`${field}.publicKey`, `Invalid ${field}.publicKey: expected an X25519PublicKey`);
  }
  w.bytes(p.publicKey.raw);
}

/** The HKDF info for an SA (exported for tests and for cross-checks with other tools). */
export function ipsecKeyInfo(params: IpsecKeyParams): Buffer {
  const w = new InfoWriter().text(IPSEC_INFO_LABEL).text(checkAead(params.aead));
  w.text('sender');
  party(w, params.sender, 'sender');
  w.text('receiver');
  party(w, params.receiver, 'receiver');
  w.u32(checkU32(params.generation, 'generation'));
  return w.done();
}

/** HKDF-SHA256 of a shared secret with the SA's info: the last step, separate for the KAT. */
export function ipsecKeyFromSecret(secret: Uint8Array, params: IpsecKeyParams): IpsecSaKey {
  const aead = checkAead(params.aead);
  const info = ipsecKeyInfo(params);
  const key = Buffer.from(hkdfSync('sha256', secret, IPSEC_HKDF_SALT, info, IPSEC_AEAD_KEY_BYTES[aead]));
  return { aead, key, icvBits: IPSEC_AEAD_ICV_BITS[aead] };
}

/**
 * The key of the SA from `params.sender` to `params.receiver`, derived by one of its two ends:
 * `localPrivateKey` must be the private half of the local party's publicKey (sender's for an
 * outbound SA, receiver's for an inbound one). Throws KeyMaterialError for a low-order peer key.
 */
export function deriveIpsecKey(localPrivateKey: X25519PrivateKey, local: 'sender' | 'receiver', params: IpsecKeyParams): IpsecSaKey {
  if (local !== 'sender' && local !== 'receiver') throw new ValidationError('local', `Invalid local ${quote(local)}: use "sender" or "receiver"`);
  const me = local === 'sender' ? params.sender : params.receiver;
  const peer = local === 'sender' ? params.receiver : params.sender;
  if (!me?.publicKey?.raw || !localPrivateKey.publicKey.raw.equals(me.publicKey.raw)) {
    throw new ValidationError(
      `${local}.publicKey`,
      `The private key given (public "${localPrivateKey.fingerprint}") is not the ${local}'s key "${me?.publicKey?.fingerprint ?? 'missing'}": pass the ${local}'s private key`,
    );
  }
  const peerField = local === 'sender' ? 'receiver.publicKey' : 'sender.publicKey';
  const secret = x25519SharedSecret(localPrivateKey, peer.publicKey, peerField);
  try {
    return ipsecKeyFromSecret(secret, params);
  } finally {
    secret.fill(0);
  }
}
