/**
 * The cluster-wide node key rotation lease (docs/wireguard-rotation.md §Concurrency): a store key
 * attached to a lease, `<prefix>locks/node-key-rotation` = {"v":1,"node":NAME}, created by
 * compare-and-swap, so at most one node rotates its WireGuard node key at a time (two nodes
 * draining opposite channels would have no channel left between them). The holder keeps it from
 * the first published step to the last (seconds); revoking the lease deletes the key.
 *
 * A key naming this node that this process does not hold is a leftover of an earlier run of this
 * agent (crash mid-rotation, lease not yet expired): it is taken over at once, so a restarted agent
 * resumes its rotation without waiting for the TTL.
 */
import type { Logger } from '../log/logger.js';
import type { Lease, Store } from '../store/store.js';
import { RotationError } from './errors.js';

export const DEFAULT_ROTATION_LOCK_TTL_SECONDS = 10;

export interface RotationLockOptions {
  store: Store;
  node: string;
  /** The lock's store key (KeyStorePaths.rotationLock()). */
  key: string;
  ttlSeconds?: number;
  log?: Logger;
}

export class NodeKeyRotationLock {
  readonly #o: RotationLockOptions;
  #lease: Lease | undefined;

  constructor(o: RotationLockOptions) {
    const ttl = o.ttlSeconds ?? DEFAULT_ROTATION_LOCK_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 2 || ttl > 300) {
      throw new RotationError('init', `Invalid rotation lock TTL ${JSON.stringify(ttl)}: use 2 to 300 seconds`);
    }
    this.#o = { ...o, ttlSeconds: ttl };
  }

  get held(): boolean {
    return this.#lease !== undefined;
  }

  /** The node holding the lock, or null. */
  async holder(): Promise<string | null> {
    const kv = await this.#o.store.get(this.#o.key);
    return kv ? holderOf(kv.value) : null;
  }

  /** Takes the lock if it is free (or a leftover of this node). True when this process holds it. */
  async acquire(): Promise<boolean> {
    if (this.#lease) return true;
    const { store, key, node } = this.#o;
    const lease = await store.grantLease(this.#o.ttlSeconds!);
    const value = Buffer.from(JSON.stringify({ v: 1, node }));
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await store.create(key, value, { lease });
      if (r.created) {
        this.#lease = lease;
        lease.onLost((err) => {
          if (this.#lease !== lease) return;
          this.#lease = undefined;
          this.#o.log?.warn({ err }, 'Lost the node key rotation lease; the rotation continues once it is taken again');
        });
        this.#o.log?.info({ key }, 'Took the node key rotation lease');
        return true;
      }
      if (holderOf(r.kv.value) !== node) break;
      // Our own leftover from an earlier run: take it over.
      await store.delete(key, r.kv.modRevision);
    }
    await lease.revoke().catch(() => undefined);
    return false;
  }

  /** Gives the lock up (its key is deleted with the lease). */
  async release(): Promise<void> {
    const lease = this.#lease;
    this.#lease = undefined;
    if (!lease) return;
    await lease.revoke();
    this.#o.log?.info({ key: this.#o.key }, 'Released the node key rotation lease');
  }
}

function holderOf(value: Buffer): string | null {
  try {
    const v = JSON.parse(value.toString('utf8')) as { node?: unknown };
    return typeof v.node === 'string' ? v.node : null;
  } catch {
    return null;
  }
}
