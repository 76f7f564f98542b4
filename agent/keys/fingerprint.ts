/**
 * Fingerprints: the one way Veil names a public key or a certificate in logs, errors, audit
 * events, rotation state and store documents. Format "sha256:<64 lowercase hex>".
 * - X25519 / Ed25519 public key: SHA-256 of the raw 32-byte public key (the bytes WireGuard
 *   shows in base64), whichever form it is given in.
 * - Certificate: SHA-256 of its DER encoding, the value `openssl x509 -fingerprint -sha256`
 *   prints (without colons, lowercase).
 * Private keys are refused: a fingerprint is only ever of public material.
 */
import { createHash, KeyObject, X509Certificate } from 'node:crypto';
import { KeyMaterialError } from './errors.js';

export const FINGERPRINT_RE = /^sha256:[0-9a-f]{64}$/;

export function isFingerprint(value: unknown): value is string {
  return typeof value === 'string' && FINGERPRINT_RE.test(value);
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Fingerprint of an X25519 or Ed25519 public key: raw 32 bytes or a public KeyObject. */
export function publicKeyFingerprint(key: Uint8Array | KeyObject): string {
  if (key instanceof KeyObject) {
    if (key.type !== 'public') {
      throw new KeyMaterialError('key', `Cannot fingerprint a ${key.type} key: pass the public key (createPublicKey(privateKey))`);
    }
    const kind = key.asymmetricKeyType;
    if (kind !== 'x25519' && kind !== 'ed25519') {
      throw new KeyMaterialError('key', `Cannot fingerprint a "${String(kind)}" key: only X25519 and Ed25519 public keys have a raw form`);
    }
    const jwk = key.export({ format: 'jwk' });
    return sha256(Buffer.from(jwk.x ?? '', 'base64url'));
  }
  if (!(key instanceof Uint8Array) || key.length !== 32) {
    throw new KeyMaterialError('key', 'Cannot fingerprint the public key: expected 32 raw bytes or a public KeyObject');
  }
  return sha256(key);
}

/** Fingerprint of a certificate given as PEM, DER or X509Certificate. */
export function certificateFingerprint(cert: string | Uint8Array | X509Certificate): string {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(typeof cert === 'string' ? cert : Buffer.from(cert));
  return sha256(x.raw);
}
