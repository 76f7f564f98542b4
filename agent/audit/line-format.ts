/**
 * The audit log's line format, shared by the writer and the verifier. One JSON object per line,
 * terminated by "\n", written by pino, so each line starts with `"level":"audit"`. Envelope
 * fields, in this order, precede the event's own fields:
 *
 *   level "audit" · v 1 · seq (1, 2, 3, ...) · time (ISO 8601, UTC, ms) · node · prev · event
 *
 * `prev` is the SHA-256 (lowercase hex) of the previous chained line's exact bytes without its
 * terminating newline; the first line's `prev` is GENESIS_PREV. See docs/audit.md.
 */
import { createHash } from 'node:crypto';
import type { SignatureAlgorithm } from '../keys/signature.js';

export const AUDIT_FORMAT_VERSION = 1;
export const AUDIT_LEVEL = 'audit';
/** `prev` of the first line of a log. */
export const GENESIS_PREV = '0'.repeat(64);
/** No line (event, checkpoint with certificate) may exceed this many bytes; readers enforce it. */
export const MAX_LINE_BYTES = 64 * 1024;
/** Event type of a checkpoint line (writer-internal). */
export const CHECKPOINT_EVENT = 'audit.checkpoint';
/** Event type of the line that acknowledges a torn fragment left by a crash (writer-internal). */
export const RECOVERED_EVENT = 'audit.recovered';
/** Domain separation of the bytes a checkpoint signature covers. */
export const CHECKPOINT_DOMAIN = 'veil-audit-checkpoint/v1\n';

const HEX64 = /^[0-9a-f]{64}$/;
export const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** SHA-256 of a line's bytes (without its newline), lowercase hex: the next line's `prev`. */
export function lineHash(line: Uint8Array): string {
  return createHash('sha256').update(line).digest('hex');
}

export function isLineHash(value: unknown): value is string {
  return typeof value === 'string' && HEX64.test(value);
}

/** The envelope every line carries. */
export interface Envelope {
  level: typeof AUDIT_LEVEL;
  v: typeof AUDIT_FORMAT_VERSION;
  seq: number;
  time: string;
  node: string;
  prev: string;
  event: string;
}


/** The signed fields of a checkpoint line (everything but `certificate` and `signature`). */
export interface CheckpointFields {
  seq: number;
  time: string;
  node: string;
  prev: string;
  /** True for the checkpoint written by close(): the writer stopped cleanly after it. */
  final: boolean;
  /** SHA-256 of the signing certificate's DER ("sha256:<hex>"). */
  certFingerprint: string;
  sigAlg: SignatureAlgorithm;
}

/**
 * The exact bytes a checkpoint signature covers: a domain string, then a JSON array of the signed
 * fields in a fixed order. `prev` is the chain head: the hash of the line before the checkpoint,
 * which commits to every line before it.
 */
export function checkpointMessage(f: CheckpointFields): Buffer {
  const body = JSON.stringify([
    AUDIT_FORMAT_VERSION,
    f.seq,
    f.time,
    f.node,
    f.prev,
    f.final,
    f.certFingerprint,
    f.sigAlg,
  ]);
  return Buffer.from(CHECKPOINT_DOMAIN + body, 'utf8');
}
