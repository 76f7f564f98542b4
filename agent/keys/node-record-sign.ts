/**
 * Signing node records with the node certificate's key.
 *
 * The signed bytes are NODE_RECORD_SIGNING_CONTEXT followed by the record's canonical JSON
 * (canonical-json.ts): the context string keeps a record signature from ever being valid for
 * anything else the node key signs (audit checkpoints, certificate requests).
 *
 * Algorithms follow the certificate's key: ECDSA P-256 with SHA-256 (DER signature, as OpenSSL
 * writes it) or Ed25519. The envelope carries the node certificate so a verifier needs only the
 * CA: { record, certificate (PEM), algorithm, signature (base64) }, itself written as canonical
 * JSON on the wire.
 */
import { createPrivateKey, createPublicKey, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { canonicalJson, canonicalJsonBytes } from './canonical-json.js';
import { nodeNameFromCertificate } from './node-certificate-check.js';
import { digestOf, signatureAlgorithmOf, type SignatureAlgorithm } from './signature.js';
import { NodeRecordError } from './errors.js';
import { validateNodeRecord, type NodeRecord } from './node-record.js';

export const NODE_RECORD_SIGNING_CONTEXT = 'veil/node-record/v1\n';

/** The schemes node records use (certs/ issues P-256 node certificates; Ed25519 also verifies). */
export type NodeRecordSignatureAlgorithm = Exclude<SignatureAlgorithm, 'ecdsa-p384-sha384'>;

export interface SignedNodeRecord {
  record: NodeRecord;
  /** The node certificate (PEM) whose key made the signature. */
  certificate: string;
  algorithm: NodeRecordSignatureAlgorithm;
  /** Base64 signature over nodeRecordSigningBytes(record). */
  signature: string;
}

/** How the node name is read from a node certificate (default: nodeNameFromCertificate, its single CN). */
export type NodeNameOf = (cert: X509Certificate) => string | undefined;

/** The bytes a record's signature covers. */
export function nodeRecordSigningBytes(record: NodeRecord): Buffer {
  return Buffer.concat([Buffer.from(NODE_RECORD_SIGNING_CONTEXT), canonicalJsonBytes(record, 'record')]);
}

/** The node-record scheme for a certificate's public key, or undefined when records cannot use it. */
export function signatureAlgorithmFor(key: KeyObject): NodeRecordSignatureAlgorithm | undefined {
  const alg = signatureAlgorithmOf(key);
  return alg === 'ecdsa-p384-sha384' ? undefined : alg;
}

export interface SignNodeRecordOptions {
  /** The node certificate's private key (PEM or KeyObject). */
  privateKey: string | KeyObject;
  /** The node certificate (PEM). */
  certificate: string;
  nodeNameOf?: NodeNameOf;
}

/**
 * Signs a record. Refuses a malformed record (NodeRecordError "malformed"), a key that is not
 * the certificate's, a certificate for another node name, or an unsupported key type — so a
 * node never publishes a record its peers would reject for those reasons.
 */
export function signNodeRecord(record: NodeRecord, opts: SignNodeRecordOptions): SignedNodeRecord {
  const valid = validateNodeRecord(record);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(opts.certificate);
  } catch (err) {
    throw new ValidationError('certificate', 'Invalid node certificate: expected one PEM certificate ("-----BEGIN CERTIFICATE-----")', { cause: err });
  }
  let key: KeyObject;
  try {
    key = typeof opts.privateKey === 'string' ? createPrivateKey(opts.privateKey) : opts.privateKey;
  } catch {
    // The cause is dropped on purpose: OpenSSL's text could echo part of the input.
    throw new ValidationError('privateKey', 'Invalid node private key: expected a PEM private key (PKCS#8, SEC1 or Ed25519) matching the node certificate');
  }
  if (key.type !== 'private') throw new ValidationError('privateKey', `Invalid node private key: got a ${key.type} key; pass the private key`);
  const alg = signatureAlgorithmFor(cert.publicKey);
  if (!alg) {
    throw new ValidationError(
      'certificate',
      `Unsupported node certificate key type "${cert.publicKey.asymmetricKeyType}": node records are signed with ECDSA P-256 or Ed25519 keys`,
    );
  }
  const certSpki = cert.publicKey.export({ type: 'spki', format: 'der' });
  const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!certSpki.equals(keySpki)) {
    throw new ValidationError('privateKey', `The private key does not belong to node certificate "${cert.subject.replace(/\n/g, ', ')}": pass that certificate's key`);
  }
  const certName = (opts.nodeNameOf ?? nodeNameFromCertificate)(cert);
  if (certName !== valid.name) {
    throw new NodeRecordError(
      'certificate_name_mismatch',
      valid.name,
      `Cannot sign the record of node "${valid.name}" with the certificate of ${certName === undefined ? 'no single node name' : `node "${certName}"`}: use node "${valid.name}"'s certificate`,
    );
  }
  const signature = sign(digestOf(alg), nodeRecordSigningBytes(valid), key).toString('base64');
  return { record: valid, certificate: cert.toString(), algorithm: alg, signature };
}

/** The wire form of a signed record (canonical JSON text) as published to the store. */
export function serializeSignedNodeRecord(signed: SignedNodeRecord): string {
  return canonicalJson(signed, 'signedRecord');
}
