/**
 * How checkpoints are signed and verified, as two small interfaces so the certs/ module can plug
 * in its own node-certificate holder and trust bundle later:
 * - CheckpointSigner: the node certificate (PEM) and a sign() with its private key.
 * - CheckpointVerifier: checks one checkpoint's certificate and signature (see ca-verifier.ts for
 *   the implementation that takes CA PEMs).
 *
 * The signature scheme follows from the certificate's key; a signer must produce exactly it:
 *   EC P-256 → ECDSA with SHA-256 (DER signature) · EC P-384 → ECDSA with SHA-384 · Ed25519.
 */
import { createPublicKey, KeyObject, sign as cryptoSign, X509Certificate } from 'node:crypto';
import { AuditSignerError } from './errors.js';
import { digestOf, signatureAlgorithmOf } from '../keys/signature.js';

export interface CheckpointSigner {
  /** The node certificate whose private key makes the signatures, PEM. */
  readonly certificatePem: string;
  /** Signs `data` with the certificate's private key in the scheme of signatureAlgorithmOf(). */
  sign(data: Buffer): Buffer;
}

/** What a verifier is asked to check for one checkpoint. */
export interface CheckpointToVerify {
  /** The certificate embedded in (or referenced by) the log, PEM. */
  certificatePem: string;
  /** The node the checkpoint claims to be written by. */
  node: string;
  /** The checkpoint's time: the certificate must have been valid then. */
  time: Date;
  sigAlg: string;
  /** checkpointMessage() of the checkpoint. */
  data: Buffer;
  signature: Buffer;
}

export interface CheckpointVerifier {
  /** Throws AuditSignatureError saying what is wrong; returns the certificate's subject when good. */
  verify(c: CheckpointToVerify): { subject: string };
}

function describeKey(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve ? `${key.asymmetricKeyType} ${curve}` : String(key.asymmetricKeyType);
}

/**
 * A signer from a private KeyObject and its certificate (node:crypto). Checks that the key is
 * private, of a supported type, and the private half of the certificate's public key.
 */
export function keyObjectSigner(privateKey: KeyObject, certificatePem: string): CheckpointSigner {
  if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private') {
    throw new AuditSignerError('Cannot sign audit checkpoints: expected a private KeyObject (createPrivateKey(pem))');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificatePem);
  } catch (err) {
    throw new AuditSignerError('Cannot sign audit checkpoints: the node certificate is not a valid PEM certificate', { cause: err });
  }
  const alg = signatureAlgorithmOf(cert.publicKey);
  if (!alg) {
    throw new AuditSignerError(
      `Cannot sign audit checkpoints with a "${describeKey(cert.publicKey)}" certificate: use an EC P-256, EC P-384 or Ed25519 node certificate`,
    );
  }
  const derived = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const certified = cert.publicKey.export({ format: 'der', type: 'spki' });
  if (!derived.equals(certified)) {
    throw new AuditSignerError(
      `Cannot sign audit checkpoints: the private key does not belong to the certificate "${cert.subject.replace(/\n/g, ', ')}"; pass the key the certificate was issued for`,
    );
  }
  const digest = digestOf(alg);
  return {
    certificatePem: cert.toString(),
    sign: (data) => cryptoSign(digest, data, privateKey),
  };
}
