/**
 * The one store interface the control plane programs against. Implementations: etcd
 * (agent/store/etcd-store.ts, a real etcd; the lab and large clusters) and in-memory
 * (agent/store/memory-store.ts, unit tests only). Designed so a Kubernetes (CRD) implementation
 * fits later: keys are paths, values are opaque bytes, revisions are the store's own ordering
 * (etcd revision / Kubernetes resourceVersion), and every write can be a compare-and-swap.
 *
 * Inputs read from the store come from the cluster and are hostile until validated: callers
 * parse and bound every value they read.
 */

/** One stored key. Revisions are decimal strings: etcd's are int64, Kubernetes' are opaque. */
export interface KeyValue {
  key: string;
  value: Buffer;
  /** Revision of the write that created the key. */
  createRevision: string;
  /** Revision of the last write to the key (the compare-and-swap token). */
  modRevision: string;
  /** Lease the key is attached to, if any. */
  lease?: string;
}

export type WatchEvent =
  | { type: 'put'; kv: KeyValue }
  | { type: 'delete'; key: string; modRevision: string };

export interface WatchOptions {
  /**
   * Resume after this revision: every event with a revision greater than it is delivered, in
   * order, exactly once (a watch that breaks and reconnects resumes from the last delivered
   * revision without losing or repeating events). Omitted: from now.
   */
  afterRevision?: string;
}

export interface Watch {
  /** Stops the watch; no event is delivered after it resolves. */
  close(): Promise<void>;
}

export interface WatchHandlers {
  /** Called in revision order; the watch waits for the returned promise before the next. */
  onEvent(event: WatchEvent): void | Promise<void>;
  /**
   * The watch cannot continue (for example the revision to resume from was compacted away:
   * code "VEIL_STORE_COMPACTED"; the caller must re-list and watch again). Transient connection
   * failures are retried inside the store and never reach this callback.
   */
  onError(err: Error): void;
}

export interface Lease {
  readonly id: string;
  readonly ttlSeconds: number;
  /** Stops refreshing and deletes every key attached to the lease. */
  revoke(): Promise<void>;
  /** Called once if the lease expired or could not be refreshed (keys attached to it are gone). */
  onLost(fn: (err: Error) => void): void;
}

export interface ListResult {
  items: KeyValue[];
  /** The store revision the list is consistent with: watch from here to miss nothing. */
  revision: string;
}

export interface Store {
  get(key: string): Promise<KeyValue | null>;
  /** Every key under the prefix, consistent at one revision. */
  list(prefix: string): Promise<ListResult>;
  /** Creates the key only if absent. `created: false` returns the existing value. */
  create(key: string, value: Buffer, opts?: { lease?: Lease }): Promise<{ created: boolean; kv: KeyValue }>;
  /**
   * Writes the key only if its modRevision is still `expectedModRevision`. `updated: false`
   * returns the current value (null if it was deleted) so the caller can retry.
   */
  update(
    key: string,
    value: Buffer,
    expectedModRevision: string,
    opts?: { lease?: Lease },
  ): Promise<{ updated: boolean; kv: KeyValue | null }>;
  /** Deletes the key, only at `expectedModRevision` when given. True when something was deleted. */
  delete(key: string, expectedModRevision?: string): Promise<boolean>;
  /** A lease refreshed in the background until revoked or lost. */
  grantLease(ttlSeconds: number): Promise<Lease>;
  watch(prefix: string, handlers: WatchHandlers, opts?: WatchOptions): Promise<Watch>;
  close(): Promise<void>;
}
