/**
 * Errors of the key layer (agent/keys): one subclass of VeilError per failure kind. Messages
 * follow agent/errors.ts (capital letter, quoted values, state and fix) and never carry key
 * material: at most a public-key fingerprint.
 *
 * They live here rather than in agent/errors.ts so that the key layer is one folder; they are
 * VeilErrors like every other, so `hasCode()` and `instanceof VeilError` work as usual.
 */
import { VeilError } from '../errors.js';

/** A key is malformed (wrong length or type) or unusable (a low-order X25519 point). */
export class KeyMaterialError extends VeilError {
  readonly field: string;
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('VEIL_KEY_MATERIAL', message, options);
    this.field = field;
  }
}

/**
 * A file holding a private key cannot be written or read safely: missing, not a regular file,
 * a symlink, readable by group or others, owned by someone else, or not in the expected format.
 */
export class KeyFileError extends VeilError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('VEIL_KEY_FILE', message, options);
    this.path = path;
  }
}

/** A receiver has no free SPI left in the allowed range. */
export class SpiExhaustedError extends VeilError {
  constructor(message: string) {
    super('VEIL_SPI_EXHAUSTED', message);
  }
}

/**
 * Why a node record was rejected. Stable strings: they become the `reason` of the audit event
 * "record rejected".
 */
export type NodeRecordRejectReason =
  | 'oversized'
  | 'malformed'
  | 'unsigned'
  | 'certificate_invalid'
  | 'certificate_untrusted'
  | 'certificate_expired'
  | 'certificate_name_mismatch'
  | 'signature_invalid'
  | 'stale_sequence'
  | 'stale_issued_at'
  | 'future_issued_at';

/** A node record failed verification (or could not be signed); `reason` says which check. */
export class NodeRecordError extends VeilError {
  readonly reason: NodeRecordRejectReason;
  /** The record's node name when it could be read, for the audit event. */
  readonly node: string | undefined;
  constructor(reason: NodeRecordRejectReason, node: string | undefined, message: string, options?: { cause?: unknown }) {
    super('VEIL_NODE_RECORD', message, options);
    this.reason = reason;
    this.node = node;
  }
}

/** A key rotation step was asked for out of order, or before its conditions hold. */
export class RotationError extends VeilError {
  readonly step: string;
  constructor(step: string, message: string) {
    super('VEIL_ROTATION_ORDER', message);
    this.step = step;
  }
}
