/**
 * Signatures made with a node certificate's key — node records (node-record-sign.ts) and audit
 * checkpoints (agent/audit) — in the one scheme that follows from the key: EC P-256 →
 * ECDSA/SHA-256 (DER), EC P-384 → ECDSA/SHA-384, Ed25519 → Ed25519. Node records accept only
 * P-256 and Ed25519 (what certs/ issues); the audit log also reads P-384.
 */
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';

export type SignatureAlgorithm = 'ecdsa-p256-sha256' | 'ecdsa-p384-sha384' | 'ed25519';

/** The scheme for a certificate's public key, or undefined for an unsupported key. */
export function signatureAlgorithmOf(publicKey: KeyObject): SignatureAlgorithm | undefined {
  const type = publicKey.asymmetricKeyType;
  if (type === 'ed25519') return 'ed25519';
  if (type === 'ec') {
    const curve = publicKey.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ecdsa-p256-sha256';
    if (curve === 'secp384r1') return 'ecdsa-p384-sha384';
  }
  return undefined;
}

/** The node:crypto digest argument for a scheme (null: the scheme hashes internally). */
export function digestOf(alg: SignatureAlgorithm): string | null {
  return alg === 'ed25519' ? null : alg === 'ecdsa-p256-sha256' ? 'sha256' : 'sha384';
}

/** Verifies a signature with a public key in the given scheme (false on any mismatch). */
export function verifySignature(alg: SignatureAlgorithm, publicKey: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    return cryptoVerify(digestOf(alg), data, publicKey, signature);
  } catch {
    return false;
  }
}
