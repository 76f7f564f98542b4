/**
 * Failure kinds of the audit log. They live beside the audit code (not in agent/errors.ts) so the
 * audit module stays self-contained; all extend VeilError with a stable `code`. Messages never
 * quote a value that the key-material guard refused.
 */
import { ValidationError, VeilError } from '../errors.js';

/** An event handed to the audit log does not match its schema (field named, value quoted). */
export class AuditEventError extends ValidationError {}

/**
 * An event handed to the audit log holds something that looks like key material (binary data, a
 * key object, a PEM block, a long hex or base64 token, a field named like a key). The offending
 * value is never quoted.
 */
export class AuditKeyMaterialError extends VeilError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('VEIL_AUDIT_KEY_MATERIAL', message);
    this.field = field;
  }
}

/** The audit log file cannot be opened, continued, written or synced. */
export class AuditLogError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_AUDIT_LOG', message, options);
  }
}

/** A checkpoint signer is unusable (unsupported key type, key and certificate do not match). */
export class AuditSignerError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_AUDIT_SIGNER', message, options);
  }
}

/** A checkpoint signature or its certificate does not verify against the trusted CAs. */
export class AuditSignatureError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_AUDIT_SIGNATURE', message, options);
  }
}

/** A trust anchor (CA PEM) given to the verifier is unusable. */
export class AuditTrustError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_AUDIT_TRUST', message, options);
  }
}
