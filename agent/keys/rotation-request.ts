/**
 * On-demand rotation requests (`veil keys rotate`): a key <prefix>keys/rotate/<node>/node or
 * .../identity/<id> holding {"v":1,"requestedAt":MS}. The node's key manager watches its
 * requests, starts an on-demand rotation of that slot as soon as no rotation of it is running,
 * and deletes the request (at the revision it read) when the new generation exists. Writing a
 * request again while one is waiting changes nothing: one rotation follows.
 */
import type { Store } from '../store/store.js';
import { RotationError } from './errors.js';
import { KeyStorePaths, slotLabel, type SlotRef } from './key-store-paths.js';

export interface RotationRequest {
  slot: SlotRef;
  requestedAt: number;
  modRevision: string;
}

/** Writes a request (or leaves an existing one waiting). Returns whether it was new. */
export async function requestRotation(store: Store, paths: KeyStorePaths, node: string, slot: SlotRef, now = Date.now()): Promise<boolean> {
  const r = await store.create(paths.rotateRequest(node, slot), Buffer.from(JSON.stringify({ v: 1, requestedAt: now })));
  return r.created;
}

/** Parses a request read from the store (hostile); undefined when the key is not a request. */
export function parseRotationRequest(paths: KeyStorePaths, node: string, key: string, value: Buffer, modRevision: string): RotationRequest | undefined {
  const slot = paths.rotateRequestSlot(node, key);
  if (!slot) return undefined;
  let requestedAt = 0;
  try {
    const o = value.length <= 1024 ? (JSON.parse(value.toString('utf8')) as { v?: unknown; requestedAt?: unknown }) : undefined;
    if (o?.v === 1 && Number.isSafeInteger(o.requestedAt) && (o.requestedAt as number) >= 0) requestedAt = o.requestedAt as number;
    else throw new Error('shape');
  } catch {
    throw new RotationError('request', `Malformed rotation request for the ${slotLabel(slot)} of "${node}" at "${key}": expected {"v":1,"requestedAt":<ms>}; delete the key and run "veil keys rotate" again`);
  }
  return { slot, requestedAt, modRevision };
}
