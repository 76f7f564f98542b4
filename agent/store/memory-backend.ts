/**
 * The state behind MemoryStore — what an etcd server is to its clients: one global revision
 * counter starting at 1 and raised by every write that changes something (one write's events
 * share one revision), keys with create/mod revisions, leases with a TTL clock (real time) whose
 * expiry deletes the attached keys in one revision, the event history for watches to resume
 * from, and compaction. Several MemoryStore clients can share one backend (several agents).
 *
 * Test controls model the failures stores must survive: `disconnect()` makes the backend
 * unreachable for every client (calls reject, watch streams break, lease refreshes fail) until
 * `reconnect()`; `compact(revision)` forgets history before a revision.
 *
 * Methods take arguments already validated by MemoryStore.
 */
import { ValidationError } from '../errors.js';
import { StoreCompactedError } from './errors.js';
import type { KeyValue, ListResult, WatchEvent } from './store.js';
import { checkRevision, quote } from './validate.js';
import type { RevisionedEvent } from './watch-delivery.js';

interface Entry {
  value: Buffer;
  createRevision: bigint;
  modRevision: bigint;
  lease: string | undefined;
}

interface ServerLease {
  ttlSeconds: number;
  timer: NodeJS.Timeout;
  keys: Set<string>;
}

/** A watch stream's view of the backend: live events, and the stream breaking. */
export interface BackendSubscriber {
  live(batch: RevisionedEvent[]): void;
  broke(): void;
}

export class MemoryBackend {
  private revision = 1n;
  private compactRevision = 0n;
  private readonly data = new Map<string, Entry>();
  /** Every event of every revision >= compactRevision, in revision order. */
  private history: RevisionedEvent[] = [];
  private readonly leases = new Map<string, ServerLease>();
  private readonly subscribers = new Set<BackendSubscriber>();
  private nextLeaseId = 0x7e11_0000n;
  private up = true;

  // ---- test controls --------------------------------------------------------------------

  /** Simulates the store going away for every client: calls fail, watch streams break. */
  disconnect(): void {
    this.up = false;
    const subs = [...this.subscribers];
    this.subscribers.clear();
    for (const s of subs) s.broke();
  }

  /** Ends a simulated outage; broken watches resume on their next retry. */
  reconnect(): void {
    this.up = true;
  }

  get online(): boolean {
    return this.up;
  }

  /** Forgets history before `revision`: watches that must resume before it get VEIL_STORE_COMPACTED. */
  compact(revision: string): void {
    const rev = checkRevision('revision', revision, 1);
    if (rev > this.revision) {
      throw new ValidationError(
        'revision',
        `Cannot compact at revision ${quote(revision)}: the store is at revision "${this.revision}", pass a revision it has reached`,
      );
    }
    if (rev <= this.compactRevision) return;
    this.compactRevision = rev;
    this.history = this.history.filter((e) => e.revision >= rev);
  }

  currentRevision(): string {
    return this.revision.toString();
  }

  // ---- key-value ------------------------------------------------------------------------

  get(key: string): KeyValue | null {
    const e = this.data.get(key);
    return e ? toKv(key, e) : null;
  }

  list(prefix: string): ListResult {
    const items: KeyValue[] = [];
    for (const [k, e] of this.data) if (k.startsWith(prefix)) items.push(toKv(k, e));
    items.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
    return { items, revision: this.revision.toString() };
  }

  create(key: string, value: Buffer, lease: string | undefined): { created: boolean; kv: KeyValue } {
    const existing = this.data.get(key);
    if (existing) return { created: false, kv: toKv(key, existing) };
    this.commit((rev) => [this.put(key, value, rev, lease)]);
    return { created: true, kv: toKv(key, this.data.get(key)!) };
  }

  /** `lease` undefined keeps the key's own lease (etcd's ignore_lease). */
  update(key: string, value: Buffer, expected: bigint, lease: string | undefined): { updated: boolean; kv: KeyValue | null } {
    const existing = this.data.get(key);
    if (!existing || existing.modRevision !== expected) {
      return { updated: false, kv: existing ? toKv(key, existing) : null };
    }
    this.commit((rev) => [this.put(key, value, rev, lease ?? existing.lease)]);
    return { updated: true, kv: toKv(key, this.data.get(key)!) };
  }

  delete(key: string, expected: bigint | undefined): boolean {
    const existing = this.data.get(key);
    if (!existing || (expected !== undefined && existing.modRevision !== expected)) return false;
    this.commit((rev) => [this.remove(key, rev)]);
    return true;
  }

  // ---- leases ---------------------------------------------------------------------------

  grantLease(ttlSeconds: number): string {
    const id = (this.nextLeaseId++).toString();
    this.leases.set(id, { ttlSeconds, timer: this.expiryTimer(id, ttlSeconds), keys: new Set() });
    return id;
  }

  hasLease(id: string): boolean {
    return this.leases.has(id);
  }

  /** A keep-alive: the TTL granted again, or 0 when the lease no longer exists. */
  refreshLease(id: string): number {
    const s = this.leases.get(id);
    if (!s) return 0;
    clearTimeout(s.timer);
    s.timer = this.expiryTimer(id, s.ttlSeconds);
    return s.ttlSeconds;
  }

  /** Ends a lease: its keys are deleted in one revision. */
  revokeLease(id: string): void {
    const s = this.leases.get(id);
    if (!s) return;
    clearTimeout(s.timer);
    this.leases.delete(id);
    const keys = [...s.keys].sort();
    this.commit((rev) => keys.map((k) => this.remove(k, rev)));
  }

  // ---- watch ----------------------------------------------------------------------------

  /**
   * Events under `prefix` after revision `after`, then live events to `sub` until the backend
   * disconnects; throws StoreCompactedError when `after + 1` was compacted away.
   */
  subscribe(prefix: string, after: bigint, sub: BackendSubscriber): RevisionedEvent[] {
    if (after + 1n < this.compactRevision) {
      throw new StoreCompactedError(
        (after + 1n).toString(),
        this.compactRevision.toString(),
        `Watch on "${prefix}" cannot resume at revision "${after + 1n}": the store compacted history up to "${this.compactRevision}"; list again and watch from the list's revision`,
      );
    }
    this.subscribers.add(sub);
    return this.history.filter((e) => e.revision > after && keyOf(e.event).startsWith(prefix));
  }

  unsubscribe(sub: BackendSubscriber): void {
    this.subscribers.delete(sub);
  }

  // ---- internals ------------------------------------------------------------------------

  private expiryTimer(id: string, ttlSeconds: number): NodeJS.Timeout {
    const t = setTimeout(() => this.revokeLease(id), ttlSeconds * 1000);
    t.unref();
    return t;
  }

  /** Applies one revision's changes; a revision is used only if something changed. */
  private commit(mutate: (rev: bigint) => WatchEvent[]): void {
    const rev = this.revision + 1n;
    const events = mutate(rev);
    if (events.length === 0) return;
    this.revision = rev;
    const batch = events.map((event) => ({ revision: rev, event }));
    this.history.push(...batch);
    for (const s of this.subscribers) s.live(batch);
  }

  private put(key: string, value: Buffer, rev: bigint, lease: string | undefined): WatchEvent {
    const old = this.data.get(key);
    if (old?.lease !== undefined && old.lease !== lease) this.leases.get(old.lease)?.keys.delete(key);
    const entry: Entry = { value: Buffer.from(value), createRevision: old ? old.createRevision : rev, modRevision: rev, lease };
    this.data.set(key, entry);
    if (lease !== undefined) this.leases.get(lease)?.keys.add(key);
    return { type: 'put', kv: toKv(key, entry) };
  }

  private remove(key: string, rev: bigint): WatchEvent {
    const old = this.data.get(key);
    if (old?.lease !== undefined) this.leases.get(old.lease)?.keys.delete(key);
    this.data.delete(key);
    return { type: 'delete', key, modRevision: rev.toString() };
  }
}

export function keyOf(e: WatchEvent): string {
  return e.type === 'put' ? e.kv.key : e.key;
}

/** A copy: callers may mutate what they get without touching the store. */
function toKv(key: string, e: Entry): KeyValue {
  const kv: KeyValue = {
    key,
    value: Buffer.from(e.value),
    createRevision: e.createRevision.toString(),
    modRevision: e.modRevision.toString(),
  };
  if (e.lease !== undefined) kv.lease = e.lease;
  return kv;
}
