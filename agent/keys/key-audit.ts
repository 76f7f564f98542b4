/**
 * Turns a rotation step's event (rotation.ts) into the audit log's event (agent/audit/events.ts).
 * The two vocabularies differ only in naming: rotation.ts counts the node key as identity 0, the
 * audit log omits `identity` for node keys.
 */
import type { AbandonReason, AuditEvent, RetireReason } from '../audit/events.js';
import type { KeyAuditEvent } from './rotation.js';

export interface KeyAuditExtra {
  retireReason?: RetireReason;
  abandonReason?: AbandonReason;
  missingPeers?: number;
}

export function toAuditEvent(e: KeyAuditEvent, extra: KeyAuditExtra = {}): AuditEvent {
  const ref = {
    keyKind: e.kind,
    ...(e.kind === 'identity' ? { identity: e.identity } : {}),
    generation: e.generation,
    fingerprint: e.fingerprint,
  };
  switch (e.type) {
    case 'key.generated':
      return { event: 'key.generated', ...ref, algorithm: 'x25519' };
    case 'key.published':
      return { event: 'key.published', ...ref };
    case 'key.acknowledged':
      return { event: 'key.acknowledged', ...ref, peerNode: e.peer!, allAcknowledged: e.allAcknowledged === true };
    case 'key.activated':
      return { event: 'key.activated', ...ref };
    case 'key.peer_moved':
      return { event: 'key.peer_moved', ...ref, peerNode: e.peer! };
    case 'key.retired':
      return { event: 'key.retired', ...ref, reason: extra.retireReason ?? 'rotation' };
    case 'key.destroyed':
      return { event: 'key.destroyed', ...ref };
    case 'key.abandoned':
      return {
        event: 'key.abandoned',
        ...ref,
        reason: extra.abandonReason ?? 'not-acknowledged',
        ...(extra.missingPeers !== undefined ? { missingPeers: extra.missingPeers } : {}),
      };
  }
}
