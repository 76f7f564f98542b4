import { describe, expect, it } from 'vitest';
import { AuditEventError } from '../../../agent/audit/errors.js';
import { AUDIT_EVENT_TYPES, validateAuditEvent } from '../../../agent/audit/events.js';
import { sampleEvents } from './sample-events.js';
import { thrown } from '../../support/validation-error.js';

const rejects = (value: unknown): AuditEventError => thrown(() => validateAuditEvent(value), AuditEventError);

describe('validateAuditEvent()', () => {
  it('accepts one valid event of every type the schema knows', () => {
    expect(new Set(sampleEvents.map((e) => e.event))).toEqual(new Set(AUDIT_EVENT_TYPES));
    for (const e of sampleEvents) expect(validateAuditEvent(e)).toBe(e);
  });

  it('refuses an unknown event type, naming the allowed ones', () => {
    const e = rejects({ event: 'key.leaked' });
    expect(e.field).toBe('event');
    expect(e.message).toMatch(/^Invalid audit event type "key.leaked": use one of key.generated/);
  });

  it('refuses unknown and missing fields, naming the field', () => {
    expect(rejects({ ...sampleEvents[0], extra: 1 }).message).toMatch(/^Unknown field "extra" in audit event "key.generated"/);
    const { generation: _g, ...noGeneration } = sampleEvents[0] as { generation: number };
    expect(rejects(noGeneration).field).toBe('generation');
  });

  it('refuses wrong types and out-of-range values, quoting them', () => {
    expect(rejects({ ...sampleEvents[0], generation: -1 }).message).toBe(
      `Invalid "generation" -1 in audit event "key.generated": expected an integer 0..${Number.MAX_SAFE_INTEGER}`,
    );
    expect(rejects({ ...sampleEvents[1], identity: 70000 }).field).toBe('identity');
    expect(rejects({ ...sampleEvents[0], fingerprint: 'sha256:ABC' }).field).toBe('fingerprint');
    expect(rejects({ ...sampleEvents[7], peerNode: 'Node_B' }).field).toBe('peerNode');
    expect(rejects({ ...sampleEvents[7], reason: 'because' }).field).toBe('reason');
    expect(rejects({ ...sampleEvents[5], notBefore: '2026-11-23' }).field).toBe('notBefore');
  });

  it('requires identity exactly for identity keys and SVIDs', () => {
    expect(rejects({ ...sampleEvents[0], identity: 300 }).field).toBe('identity');
    const { identity: _i, ...noIdentity } = sampleEvents[1] as { identity: number };
    expect(rejects(noIdentity).field).toBe('identity');
    const { spiffeId: _s, ...noSpiffe } = sampleEvents[5] as { spiffeId: string };
    expect(rejects(noSpiffe).field).toBe('spiffeId');
  });

  it('refuses a rotation that does not move to a later generation and a certificate that ends before it starts', () => {
    expect(rejects({ ...sampleEvents[8], toGeneration: 2 }).field).toBe('toGeneration');
    expect(rejects({ ...sampleEvents[5], notAfter: '2026-11-23T09:00:00.000Z' }).field).toBe('notAfter');
  });

  it('checks the rotation events: peer of an acknowledgement or move, reason of an abandon', () => {
    expect(rejects({ ...sampleEvents[9], peerNode: undefined }).field).toBe('peerNode');
    expect(rejects({ ...sampleEvents[9], allAcknowledged: 'yes' }).message).toBe('Invalid "allAcknowledged" "yes" in audit event "key.acknowledged": expected true or false');
    expect(rejects({ ...sampleEvents[10], peerNode: 'Node_C' }).field).toBe('peerNode');
    expect(rejects({ ...sampleEvents[11], reason: 'bored' }).message).toBe('Invalid "reason" "bored" in audit event "key.abandoned": expected "not-acknowledged" or "key-lost"');
    expect(rejects({ ...sampleEvents[11], missingPeers: -1 }).field).toBe('missingPeers');
  });

  it('refuses non-objects', () => {
    for (const v of [null, 1, 'key.generated', [], undefined]) expect(rejects(v).field).toBe('event');
  });
});
