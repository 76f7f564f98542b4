/**
 * Failure kinds of node certificate issuance through the store (agent/node-cert). All extend
 * VeilError with a stable code. No message ever carries a bootstrap token, a private key or a
 * proof signature.
 */
import { VeilError } from '../errors.js';

/** Why the operator refused a certificate request (a stable, documented list: docs/keys.md). */
export type RefusalReason =
  | 'malformed'
  | 'unknown-node'
  | 'stale'
  | 'replayed'
  | 'no-token'
  | 'token-expired'
  | 'bad-proof'
  | 'untrusted-certificate'
  | 'bad-csr';

export const REFUSAL_REASONS: readonly RefusalReason[] = ['malformed', 'unknown-node', 'stale', 'replayed', 'no-token', 'token-expired', 'bad-proof', 'untrusted-certificate', 'bad-csr'];

/** The operator refused a request; on the agent side, carries the operator's reason and message. */
export class CertificateRequestRefusedError extends VeilError {
  readonly reason: RefusalReason;
  readonly node: string;
  constructor(node: string, reason: RefusalReason, message: string, options?: { cause?: unknown }) {
    super('VEIL_NODE_CERT_REFUSED', message, options);
    this.node = node;
    this.reason = reason;
  }
}

/** A record under /veil/certs/ does not parse or breaks its schema. */
export class CertificateRecordError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_NODE_CERT_RECORD', message, options);
  }
}

/** The bootstrap token file is missing, unreadable, too open or malformed. */
export class BootstrapTokenError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_BOOTSTRAP_TOKEN', message, options);
  }
}

/** The agent could not obtain a usable node certificate (no answer in time, or the answer does not verify). */
export class NodeCertificateUnavailableError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_NODE_CERT_UNAVAILABLE', message, options);
  }
}
