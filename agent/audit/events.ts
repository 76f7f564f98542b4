/**
 * The audit events: one typed variant per key / certificate lifecycle step, discriminated by
 * `event`. Callers build these; the log adds the envelope (seq, time, node, prev). Every event is
 * checked by validateAuditEvent() before it is written, and the verifier checks every line it
 * reads with the same function: unknown fields, wrong types and out-of-range values are refused.
 * No variant has room for key material: keys and certificates appear as fingerprints only.
 */
import { AuditEventError } from './errors.js';
import { isFingerprint } from '../keys/fingerprint.js';
import { ISO_TIME } from './line-format.js';

/** Which key: a node key (WireGuard static key / IPsec node key) or an identity key. */
export type KeyKind = 'node' | 'identity';

/** Identifies one generation of one key. `identity` is present exactly when keyKind is "identity". */
export interface KeyRef {
  keyKind: KeyKind;
  /** Numeric identity 1..65535 (identity keys only). */
  identity?: number;
  /** Key generation, counting from 0 per key owner. */
  generation: number;
  /** publicKeyFingerprint() of the public half. */
  fingerprint: string;
}

export interface KeyGenerated extends KeyRef {
  event: 'key.generated';
  algorithm: 'x25519';
}
export interface KeyPublished extends KeyRef {
  event: 'key.published';
}
export interface KeyActivated extends KeyRef {
  event: 'key.activated';
}
export type RetireReason = 'rotation' | 'on-demand' | 'identity-removed' | 'node-removed' | 'compromised';
export interface KeyRetired extends KeyRef {
  event: 'key.retired';
  reason: RetireReason;
}
export interface KeyDestroyed extends KeyRef {
  event: 'key.destroyed';
}

/** A peer installed receive state for a pending generation (docs/keys.md §Acknowledgements). */
export interface KeyAcknowledged extends KeyRef {
  event: 'key.acknowledged';
  peerNode: string;
  /** Whether every current peer has now acknowledged the generation. */
  allAcknowledged: boolean;
}
/** A peer now sends with the active generation. */
export interface KeyPeerMoved extends KeyRef {
  event: 'key.peer_moved';
  peerNode: string;
}
/**
 * A pending generation was dropped before activation and its private key wiped:
 * "not-acknowledged" — peers did not acknowledge within the timeout; "key-lost" — its key file
 * was gone after a restart.
 */
export type AbandonReason = 'not-acknowledged' | 'key-lost';
export interface KeyAbandoned extends KeyRef {
  event: 'key.abandoned';
  reason: AbandonReason;
  /** Peers that had not acknowledged (not-acknowledged only). */
  missingPeers?: number;
}

/**
 * WireGuard mode, node keys (docs/wireguard-rotation.md): the node published a channel state in
 * which `channel` is being re-keyed — peers steer off it and install `generation` there.
 */
export interface KeyChannelDraining extends KeyRef {
  event: 'key.channel_draining';
  channel: 0 | 1;
}
/** WireGuard mode, node keys: the node set `generation` as the private key of channel `channel`'s device. */
export interface KeyChannelKeyed extends KeyRef {
  event: 'key.channel_keyed';
  channel: 0 | 1;
}

export type CertificateKind = 'ca' | 'node' | 'svid';
interface CertificateFields {
  certKind: CertificateKind;
  /** Subject distinguished name as printed by openssl ("CN=node-a"), at most 256 characters. */
  subject: string;
  /** The SVID's URI SAN (svid only). */
  spiffeId?: string;
  /** Identity the SVID is for (svid only). */
  identity?: number;
  /** Serial number, lowercase hex without leading "0x", at most 20 bytes. */
  serial: string;
  /** certificateFingerprint() of the certificate. */
  fingerprint: string;
  /** certificateFingerprint() of the issuing certificate (equals `fingerprint` for a root CA). */
  issuerFingerprint: string;
  notBefore: string;
  notAfter: string;
}
export interface CertificateIssued extends CertificateFields {
  event: 'certificate.issued';
}
export interface CertificateRenewed extends CertificateFields {
  event: 'certificate.renewed';
  /** Fingerprint of the certificate this one replaces. */
  previousFingerprint: string;
}

/** Why a peer's published record was rejected (nothing was installed from it). */
export type RejectReason =
  | 'unsigned'
  | 'bad-signature'
  | 'untrusted-certificate'
  | 'expired-certificate'
  | 'unknown-node'
  | 'stale-generation'
  | 'identity-not-hosted'
  | 'malformed';
export interface RecordRejected {
  event: 'record.rejected';
  /** The node whose record was rejected (as it claims to be). */
  peerNode: string;
  reason: RejectReason;
  /** Short human explanation, at most 512 characters, no key material. */
  detail?: string;
  generation?: number;
  /** Fingerprint of the key or certificate the record carried, when it could be parsed. */
  fingerprint?: string;
}

export interface RotationCompleted {
  event: 'rotation.completed';
  keyKind: KeyKind;
  identity?: number;
  fromGeneration: number;
  toGeneration: number;
  /** Fingerprint of the key now active. */
  fingerprint: string;
  /** Fingerprint of the key retired by this rotation. */
  previousFingerprint: string;
  /** Number of peers that acknowledged the new key before the old one was retired. */
  acknowledgedBy?: number;
}

export type AuditEvent =
  | KeyGenerated
  | KeyPublished
  | KeyActivated
  | KeyRetired
  | KeyDestroyed
  | KeyAcknowledged
  | KeyPeerMoved
  | KeyAbandoned
  | KeyChannelDraining
  | KeyChannelKeyed
  | CertificateIssued
  | CertificateRenewed
  | RecordRejected
  | RotationCompleted;

export type AuditEventType = AuditEvent['event'];

// ---------------------------------------------------------------------------------------------
// Validation

type Check = (v: unknown) => string | undefined;
/** Field name → [required, check returning the expected form when the value is wrong]. */
type Shape = Record<string, [boolean, Check]>;

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~-]+)+$/;
const SERIAL = /^[0-9a-f]{1,40}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

const isInt = (min: number, max: number): Check => (v) =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max ? undefined : `an integer ${min}..${max}`;
const oneOf = (...values: string[]): Check => (v) =>
  typeof v === 'string' && values.includes(v) ? undefined : values.map((x) => `"${x}"`).join(' or ');
const fingerprint: Check = (v) => (isFingerprint(v) ? undefined : 'a fingerprint "sha256:<64 lowercase hex>"');
const time: Check = (v) =>
  typeof v === 'string' && ISO_TIME.test(v) && !Number.isNaN(Date.parse(v)) ? undefined : 'an ISO 8601 UTC time "YYYY-MM-DDTHH:MM:SS.mmmZ"';
const text = (max: number): Check => (v) =>
  typeof v === 'string' && v.length <= max && PRINTABLE.test(v) ? undefined : `printable ASCII text of at most ${max} characters`;

export const checkNodeName: Check = (v) =>
  typeof v === 'string' && v.length <= 253 && NODE_NAME.test(v) ? undefined : 'a Kubernetes node name (DNS subdomain, at most 253 characters)';

const generation = isInt(0, Number.MAX_SAFE_INTEGER);
const identity = isInt(1, 65535);
const keyKind = oneOf('node', 'identity');

const keyRef: Shape = {
  keyKind: [true, keyKind],
  identity: [false, identity],
  generation: [true, generation],
  fingerprint: [true, fingerprint],
};
const certificate: Shape = {
  certKind: [true, oneOf('ca', 'node', 'svid')],
  subject: [true, text(256)],
  spiffeId: [false, (v) => (typeof v === 'string' && v.length <= 2048 && SPIFFE_ID.test(v) ? undefined : 'a SPIFFE ID "spiffe://<trust-domain>/<path>"')],
  identity: [false, identity],
  serial: [true, (v) => (typeof v === 'string' && SERIAL.test(v) ? undefined : 'lowercase hex of at most 40 digits')],
  fingerprint: [true, fingerprint],
  issuerFingerprint: [true, fingerprint],
  notBefore: [true, time],
  notAfter: [true, time],
};

const SHAPES: Record<AuditEventType, Shape> = {
  'key.generated': { ...keyRef, algorithm: [true, oneOf('x25519')] },
  'key.published': keyRef,
  'key.activated': keyRef,
  'key.retired': { ...keyRef, reason: [true, oneOf('rotation', 'on-demand', 'identity-removed', 'node-removed', 'compromised')] },
  'key.destroyed': keyRef,
  'key.acknowledged': { ...keyRef, peerNode: [true, checkNodeName], allAcknowledged: [true, (v) => (typeof v === 'boolean' ? undefined : 'true or false')] },
  'key.peer_moved': { ...keyRef, peerNode: [true, checkNodeName] },
  'key.abandoned': { ...keyRef, reason: [true, oneOf('not-acknowledged', 'key-lost')], missingPeers: [false, isInt(0, 1 << 24)] },
  'key.channel_draining': { ...keyRef, channel: [true, isInt(0, 1)] },
  'key.channel_keyed': { ...keyRef, channel: [true, isInt(0, 1)] },
  'certificate.issued': certificate,
  'certificate.renewed': { ...certificate, previousFingerprint: [true, fingerprint] },
  'record.rejected': {
    peerNode: [true, checkNodeName],
    reason: [
      true,
      oneOf('unsigned', 'bad-signature', 'untrusted-certificate', 'expired-certificate', 'unknown-node', 'stale-generation', 'identity-not-hosted', 'malformed'),
    ],
    detail: [false, text(512)],
    generation: [false, generation],
    fingerprint: [false, fingerprint],
  },
  'rotation.completed': {
    keyKind: [true, keyKind],
    identity: [false, identity],
    fromGeneration: [true, generation],
    toGeneration: [true, generation],
    fingerprint: [true, fingerprint],
    previousFingerprint: [true, fingerprint],
    acknowledgedBy: [false, isInt(0, 1 << 24)],
  },
};

/** Every event type the schema knows. */
export const AUDIT_EVENT_TYPES = Object.keys(SHAPES) as AuditEventType[];

function quote(v: unknown): string {
  const s = typeof v === 'string' ? `"${v.length > 64 ? `${v.slice(0, 64)}…` : v}"` : JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function fail(field: string, message: string): never {
  throw new AuditEventError(field, message);
}

/**
 * Checks that `value` is exactly one AuditEvent: known `event`, every required field present
 * with the right type and range, no unknown fields, and the cross-field rules (identity present
 * exactly for identity keys / SVIDs, generations increase by a rotation). Returns it typed.
 * Call assertNoKeyMaterial() first: messages quote values.
 */
export function validateAuditEvent(value: unknown): AuditEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail('event', `Invalid audit event ${quote(value)}: expected an object with an "event" field`);
  }
  const obj = value as Record<string, unknown>;
  const type = obj.event;
  if (typeof type !== 'string' || !Object.hasOwn(SHAPES, type)) {
    fail('event', `Invalid audit event type ${quote(type)}: use one of ${AUDIT_EVENT_TYPES.join(', ')}`);
  }
  const shape = SHAPES[type as AuditEventType];
  for (const [name, v] of Object.entries(obj)) {
    if (name === 'event') continue;
    const rule = shape[name];
    if (!rule) fail(name, `Unknown field "${name}" in audit event "${type}": remove it (allowed: ${Object.keys(shape).join(', ')})`);
    if (v === undefined) {
      if (rule[0]) fail(name, `Missing field "${name}" in audit event "${type}"`);
      continue;
    }
    const expected = rule[1](v);
    if (expected) fail(name, `Invalid "${name}" ${quote(v)} in audit event "${type}": expected ${expected}`);
  }
  for (const [name, [required]] of Object.entries(shape)) {
    if (required && obj[name] === undefined) fail(name, `Missing field "${name}" in audit event "${type}"`);
  }
  // Cross-field rules.
  const needsIdentity =
    obj.keyKind === 'identity' || (type.startsWith('certificate.') && obj.certKind === 'svid');
  if ('keyKind' in shape || 'certKind' in shape) {
    if (needsIdentity && obj.identity === undefined) {
      fail('identity', `Missing field "identity" in audit event "${type}": required for identity keys and SVIDs`);
    }
    if (!needsIdentity && obj.identity !== undefined) {
      fail('identity', `Unexpected field "identity" in audit event "${type}": only identity keys and SVIDs carry one`);
    }
  }
  if (type.startsWith('certificate.')) {
    if ((obj.certKind === 'svid') !== (obj.spiffeId !== undefined)) {
      fail('spiffeId', `Field "spiffeId" in audit event "${type}" must be present exactly for SVIDs`);
    }
    if (Date.parse(obj.notAfter as string) <= Date.parse(obj.notBefore as string)) {
      fail('notAfter', `Invalid validity in audit event "${type}": "notAfter" must be later than "notBefore"`);
    }
  }
  if (type === 'rotation.completed' && (obj.toGeneration as number) <= (obj.fromGeneration as number)) {
    fail('toGeneration', `Invalid "toGeneration" ${quote(obj.toGeneration)} in audit event "${type}": must exceed "fromGeneration" ${quote(obj.fromGeneration)}`);
  }
  return obj as unknown as AuditEvent;
}
