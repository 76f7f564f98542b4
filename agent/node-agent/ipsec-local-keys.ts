/**
 * The local half of the IPsec reconciler's desired state (agent/reconcile/ipsec-desired.ts
 * LocalIpsecNode), kept from the key manager's local hooks (agent/keys/kernel-key-hooks.ts):
 *
 *   installLocalKey   the generation is held (its SAs are made, unused until it sends)
 *   activateLocalKey  the generation is held and is the one the datapath sends with
 *   retireLocalKey    the generation is no longer held; an identity with no generation left is gone
 *
 * Pure bookkeeping: no kernel, no store. `node()` is what IpsecReconciler.setLocal() takes, or
 * null while there is no node key yet (the reconciler cannot plan anything without one).
 */
import type { SlotRef } from '../keys/key-store-paths.js';
import type { X25519PrivateKey } from '../keys/x25519.js';
import type { LocalIpsecNode, LocalKey } from '../reconcile/ipsec-desired.js';

/** What does not change while the agent runs: the node's name, boot id, addresses, pod CIDRs. */
export type LocalIpsecBase = Pick<LocalIpsecNode, 'name' | 'bootId' | 'addresses' | 'podCidrs'>;

interface HeldKey {
  generations: Map<number, X25519PrivateKey>;
  /** The generation activated last (the datapath sends with it), or null before any activation. */
  sending: number | null;
}

const slotId = (ref: SlotRef): string => (ref.kind === 'node' ? 'node' : `identity/${ref.identity}`);

export class LocalIpsecKeys {
  readonly #base: LocalIpsecBase;
  readonly #keys = new Map<string, HeldKey & { ref: SlotRef }>();

  constructor(base: LocalIpsecBase) {
    this.#base = base;
  }

  /** A generation is held (idempotent). */
  install(ref: SlotRef, generation: number, key: X25519PrivateKey): void {
    const id = slotId(ref);
    const held = this.#keys.get(id) ?? { ref: { kind: ref.kind, identity: ref.kind === 'node' ? 0 : ref.identity }, generations: new Map(), sending: null };
    held.generations.set(generation, key);
    this.#keys.set(id, held);
  }

  /** A generation is held and sends (idempotent). */
  activate(ref: SlotRef, generation: number, key: X25519PrivateKey): void {
    this.install(ref, generation, key);
    this.#keys.get(slotId(ref))!.sending = generation;
  }

  /** A generation is no longer held; false when it was not held (nothing changed). */
  retire(ref: SlotRef, generation: number): boolean {
    const id = slotId(ref);
    const held = this.#keys.get(id);
    if (!held || !held.generations.delete(generation)) return false;
    if (held.sending === generation) held.sending = null;
    if (held.generations.size === 0) this.#keys.delete(id);
    return true;
  }

  /** Identities with at least one held generation, ascending. */
  identities(): number[] {
    return [...this.#keys.values()].filter((h) => h.ref.kind === 'identity').map((h) => h.ref.identity).sort((a, b) => a - b);
  }

  /** The LocalIpsecNode to plan with, or null while no node key is held. */
  node(): LocalIpsecNode | null {
    const nodeKey = this.#keys.get('node');
    if (!nodeKey) return null;
    const identities = this.identities().map((identity) => ({ identity, ...localKey(this.#keys.get(`identity/${identity}`)!) }));
    return { ...this.#base, nodeKey: localKey(nodeKey), identities };
  }
}

function localKey(h: HeldKey): LocalKey {
  const generations = [...h.generations].sort(([a], [b]) => a - b).map(([generation, privateKey]) => ({ generation, privateKey }));
  return h.sending !== null && h.generations.has(h.sending) ? { generations, sending: h.sending } : { generations };
}

/**
 * The generation the datapath sends with for `identity` in `local`: the activated one, or null
 * when the identity has none (no key yet, or its first key is not acknowledged by every peer:
 * sending with it would reach receivers that have no inbound SA for it yet).
 */
export function identitySendingGeneration(local: LocalIpsecNode | null, identity: number): number | null {
  return local?.identities.find((i) => i.identity === identity)?.sending ?? null;
}
