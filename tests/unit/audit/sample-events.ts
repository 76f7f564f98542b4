/** One valid event of every type, shared by the audit unit tests. */
import type { AuditEvent } from '../../../agent/audit/events.js';

const fp = (c: string) => `sha256:${c.repeat(64)}`;

export const sampleEvents: AuditEvent[] = [
  { event: 'key.generated', keyKind: 'node', generation: 0, fingerprint: fp('a'), algorithm: 'x25519' },
  { event: 'key.published', keyKind: 'identity', identity: 256, generation: 3, fingerprint: fp('b') },
  { event: 'key.activated', keyKind: 'identity', identity: 257, generation: 3, fingerprint: fp('b') },
  { event: 'key.retired', keyKind: 'node', generation: 2, fingerprint: fp('c'), reason: 'rotation' },
  { event: 'key.destroyed', keyKind: 'node', generation: 2, fingerprint: fp('c') },
  {
    event: 'certificate.issued',
    certKind: 'svid',
    subject: 'O=veil',
    spiffeId: 'spiffe://cluster.local/ns/default/sa/web',
    identity: 300,
    serial: '1000',
    fingerprint: fp('d'),
    issuerFingerprint: fp('e'),
    notBefore: '2026-11-23T10:00:00.000Z',
    notAfter: '2026-11-23T11:00:00.000Z',
  },
  {
    event: 'certificate.renewed',
    certKind: 'node',
    subject: 'CN=node-a',
    serial: '0f3a',
    fingerprint: fp('f'),
    issuerFingerprint: fp('e'),
    previousFingerprint: fp('d'),
    notBefore: '2026-11-23T10:00:00.000Z',
    notAfter: '2026-11-24T10:00:00.000Z',
  },
  { event: 'record.rejected', peerNode: 'node-b', reason: 'bad-signature', detail: 'Signature does not verify with the certificate of node "node-b"', generation: 4 },
  { event: 'rotation.completed', keyKind: 'node', fromGeneration: 2, toGeneration: 3, fingerprint: fp('1'), previousFingerprint: fp('2'), acknowledgedBy: 4 },
  { event: 'key.acknowledged', keyKind: 'identity', identity: 256, generation: 3, fingerprint: fp('b'), peerNode: 'node-b', allAcknowledged: false },
  { event: 'key.peer_moved', keyKind: 'node', generation: 3, fingerprint: fp('b'), peerNode: 'node-c' },
  { event: 'key.abandoned', keyKind: 'node', generation: 4, fingerprint: fp('9'), reason: 'not-acknowledged', missingPeers: 1 },
  { event: 'key.channel_draining', keyKind: 'node', generation: 5, fingerprint: fp('a'), channel: 1 },
  { event: 'key.channel_keyed', keyKind: 'node', generation: 5, fingerprint: fp('a'), channel: 0 },
];
