/**
 * Verifying a published node record before anything is installed on its strength.
 *
 * Checks, in this order (the first failure is the NodeRecordError's `reason`, which becomes the
 * audit event "record rejected"):
 *   1. size of the wire bytes                       → oversized
 *   2. JSON, envelope and record shape              → malformed
 *   3. a signature is present                       → unsigned
 *   4. the certificate parses, with a supported key → certificate_invalid
 *   5. it is issued and signed by a trust anchor    → certificate_untrusted
 *   6. it and its anchor are valid now (± skew)     → certificate_expired
 *   7. it names the record's node                   → certificate_name_mismatch
 *   8. the expected node, when the caller knows it  → certificate_name_mismatch
 *   9. the signature over the canonical record      → signature_invalid (tampered or wrong key)
 *  10. newer than the last accepted record          → stale_sequence, stale_issued_at
 *  11. not issued too far in the future             → future_issued_at
 * Freshness is checked only after the signature, so unsigned bytes cannot move a node's state.
 */
import { X509Certificate } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { NodeRecordError, type NodeRecordRejectReason } from './errors.js';
import { checkNodeCertificate } from './node-certificate-check.js';
import { verifySignature } from './signature.js';
import { isNodeName, validateNodeRecord, type NodeRecord } from './node-record.js';
import {
  nodeRecordSigningBytes,
  signatureAlgorithmFor,
  type NodeNameOf,
  type NodeRecordSignatureAlgorithm,
} from './node-record-sign.js';

/** Largest signed record accepted on the wire: 2,048 keys at ~110 bytes plus a certificate. */
export const MAX_SIGNED_RECORD_BYTES = 256 * 1024;
export const MAX_CERTIFICATE_PEM_BYTES = 16 * 1024;
export const DEFAULT_MAX_FUTURE_SKEW_MS = 60_000;
export const DEFAULT_CERT_SKEW_MS = 5 * 60_000;

const ENVELOPE_MEMBERS = ['record', 'certificate', 'algorithm', 'signature'];

/** The last record accepted from one node (what a later record must be newer than). */
export interface LastAccepted {
  sequence: number;
  issuedAt: number;
}

export interface VerifyNodeRecordOptions {
  /** CA certificates (PEM) the node certificate must chain to: one, or two during CA rotation. */
  trustAnchors: readonly string[];
  /** The node the record is expected to be from (e.g. the store key), when known. */
  expectedNode?: string;
  /** The last record accepted from this node, if any. */
  last?: LastAccepted;
  /** Verification time, ms since the epoch (default Date.now()). */
  now?: number;
  maxFutureSkewMs?: number;
  /** Clock skew tolerated on certificate validity windows. */
  certificateSkewMs?: number;
  maxBytes?: number;
  nodeNameOf?: NodeNameOf;
}

export interface VerifiedNodeRecord {
  record: NodeRecord;
  /** SHA-256 fingerprint of the node certificate ("AB:CD:..."), for the audit log. */
  certificateFingerprint: string;
  algorithm: NodeRecordSignatureAlgorithm;
}

function parseAnchors(pems: readonly string[]): X509Certificate[] {
  if (!Array.isArray(pems) || pems.length === 0) {
    throw new ValidationError('trustAnchors', 'No trust anchors given: pass the cluster CA certificate (PEM), or both CAs during a CA rotation');
  }
  return pems.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      throw new ValidationError(`trustAnchors[${i}]`, `Invalid trust anchor at "trustAnchors[${i}]": expected a PEM CA certificate`, { cause: err });
    }
  });
}

/** Verifies a signed record in wire form; returns it or throws NodeRecordError with a reason. */
export function verifyNodeRecord(wire: string | Uint8Array, opts: VerifyNodeRecordOptions): VerifiedNodeRecord {
  const anchors = parseAnchors(opts.trustAnchors);
  const now = opts.now ?? Date.now();
  const maxBytes = opts.maxBytes ?? MAX_SIGNED_RECORD_BYTES;
  let node: string | undefined;
  const reject = (reason: NodeRecordRejectReason, message: string, cause?: unknown): never => {
    throw new NodeRecordError(reason, node, message, cause === undefined ? undefined : { cause });
  };
  const who = () => (node ? ` of node "${node}"` : '');

  // 1. Size, before parsing anything.
  const size = typeof wire === 'string' ? Buffer.byteLength(wire) : wire?.length;
  if (typeof size !== 'number') return reject('malformed', 'Malformed node record: expected the wire form as a string or bytes');
  if (size > maxBytes) return reject('oversized', `Rejected node record: ${size} bytes exceeds the limit of ${maxBytes}; a node publishes at most ${maxBytes} bytes`);

  // 2. Shape.
  let env: unknown;
  try {
    env = JSON.parse(typeof wire === 'string' ? wire : Buffer.from(wire).toString('utf8'));
  } catch (err) {
    return reject('malformed', 'Malformed node record: not JSON', err);
  }
  if (typeof env !== 'object' || env === null || Array.isArray(env)) return reject('malformed', 'Malformed node record: expected a JSON object with record, certificate, algorithm and signature');
  const e = env as Record<string, unknown>;
  const rawRecord = e.record as Record<string, unknown> | undefined;
  if (rawRecord && typeof rawRecord === 'object' && isNodeName(rawRecord.name)) node = rawRecord.name;
  for (const k of Object.keys(e)) {
    if (!ENVELOPE_MEMBERS.includes(k)) reject('malformed', `Malformed node record${who()}: unknown envelope member "${k.slice(0, 64)}"`);
  }
  const record = validateNodeRecord(e.record);

  // 3. Signed at all.
  if (e.signature === undefined || e.signature === null || e.signature === '') {
    return reject('unsigned', `Rejected node record${who()}: it carries no signature; records must be signed with the node certificate's key`);
  }
  if (typeof e.signature !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(e.signature) || e.signature.length > 1024) {
    return reject('malformed', `Malformed node record${who()}: the signature is not base64 of at most 1024 characters`);
  }
  if (e.algorithm !== 'ecdsa-p256-sha256' && e.algorithm !== 'ed25519') {
    return reject('malformed', `Malformed node record${who()}: unknown algorithm "${String(e.algorithm).slice(0, 64)}"; expected "ecdsa-p256-sha256" or "ed25519"`);
  }

  // 4. Certificate.
  if (typeof e.certificate !== 'string' || e.certificate.length > MAX_CERTIFICATE_PEM_BYTES) {
    return reject('certificate_invalid', `Rejected node record${who()}: the certificate must be one PEM certificate of at most ${MAX_CERTIFICATE_PEM_BYTES} bytes`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(e.certificate);
  } catch (err) {
    return reject('certificate_invalid', `Rejected node record${who()}: the certificate is not a valid PEM X.509 certificate`, err);
  }
  const alg = signatureAlgorithmFor(cert.publicKey);
  if (!alg) return reject('certificate_invalid', `Rejected node record${who()}: the certificate's key type "${cert.publicKey.asymmetricKeyType}" is not ECDSA P-256 or Ed25519`);
  // 5–8. A node certificate of this cluster naming the record's node (node-certificate-check.ts:
  // not an anchor or self-issued, issued directly by a trust anchor, both valid now ± skew).
  const skew = opts.certificateSkewMs ?? DEFAULT_CERT_SKEW_MS;
  const check = checkNodeCertificate(cert, { anchors, at: now, skewMs: skew, node: record.name, ...(opts.nodeNameOf ? { nodeNameOf: opts.nodeNameOf } : {}) });
  if (!check.ok) {
    switch (check.problem) {
      case 'anchor':
        return reject('certificate_invalid', `Rejected node record${who()}: it is signed by a trust anchor or a self-issued certificate, not a node certificate`);
      case 'untrusted':
        return reject('certificate_untrusted', `Rejected node record${who()}: its certificate (issuer "${cert.issuer.replace(/\n/g, ', ')}") is not issued by a trusted cluster CA`);
      case 'name':
        return reject('certificate_name_mismatch', `Rejected node record${who()}: its certificate is for ${check.nodeName === undefined ? 'no single node name' : `node "${check.nodeName}"`}`);
      default:
        return reject(
          'certificate_expired',
          `Rejected node record${who()}: its certificate (valid ${cert.validFrom} to ${cert.validTo}) or its CA is not valid at ${new Date(now).toISOString()}; renew the node certificate`,
        );
    }
  }
  if (opts.expectedNode !== undefined && opts.expectedNode !== record.name) {
    return reject('certificate_name_mismatch', `Rejected node record${who()}: it was published as the record of node "${opts.expectedNode}"`);
  }

  // 9. Signature.
  const sig = Buffer.from(e.signature, 'base64');
  if (e.algorithm !== alg || !verifySignature(alg, cert.publicKey, nodeRecordSigningBytes(record), sig)) {
    return reject('signature_invalid', `Rejected node record${who()}: the signature does not match the record and its node certificate (the record was altered or signed with another key)`);
  }

  // 10–11. Freshness.
  if (opts.last) {
    if (record.sequence <= opts.last.sequence) {
      return reject('stale_sequence', `Rejected node record${who()}: sequence ${record.sequence} is not newer than the accepted ${opts.last.sequence} (a replay or an old copy)`);
    }
    if (record.issuedAt < opts.last.issuedAt) {
      return reject(
        'stale_issued_at',
        `Rejected node record${who()}: issued at ${new Date(record.issuedAt).toISOString()}, before the accepted record of ${new Date(opts.last.issuedAt).toISOString()}`,
      );
    }
  }
  const future = opts.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
  if (record.issuedAt > now + future) {
    return reject(
      'future_issued_at',
      `Rejected node record${who()}: issued at ${new Date(record.issuedAt).toISOString()}, more than ${future} ms after now (${new Date(now).toISOString()}); check the node's clock`,
    );
  }
  return { record, certificateFingerprint: cert.fingerprint256, algorithm: alg };
}

/**
 * Verifies records and remembers the last accepted one per node, so stale and replayed records
 * are refused without the caller tracking sequence numbers.
 */
export class NodeRecordVerifier {
  private readonly last = new Map<string, LastAccepted>();
  constructor(private readonly opts: Omit<VerifyNodeRecordOptions, 'last' | 'now' | 'expectedNode'>) {
    parseAnchors(opts.trustAnchors);
  }

  verify(wire: string | Uint8Array, at: { now?: number; expectedNode?: string } = {}): VerifiedNodeRecord {
    // Find the last accepted record of the node the record claims to be from (checked again in full below).
    let claimed: string | undefined;
    try {
      const size = typeof wire === 'string' ? Buffer.byteLength(wire) : wire.length;
      if (size <= (this.opts.maxBytes ?? MAX_SIGNED_RECORD_BYTES)) {
        const name = (JSON.parse(typeof wire === 'string' ? wire : Buffer.from(wire).toString('utf8')) as { record?: { name?: unknown } })?.record?.name;
        if (typeof name === 'string') claimed = name;
      }
    } catch {
      claimed = undefined;
    }
    const last = claimed === undefined ? undefined : this.last.get(claimed);
    const out = verifyNodeRecord(wire, { ...this.opts, ...at, ...(last ? { last } : {}) });
    this.last.set(out.record.name, { sequence: out.record.sequence, issuedAt: out.record.issuedAt });
    return out;
  }

  /** Forgets a node (it was deleted from the cluster). */
  forget(node: string): void {
    this.last.delete(node);
  }
}
