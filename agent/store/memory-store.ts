/**
 * The Store in memory, for fast unit tests of code built on the store: a client of a
 * MemoryBackend (its "server"), with the same semantics and the same failure behaviour as the
 * etcd store — typed errors while the backend is disconnected, watches that break and resume
 * after the last delivered revision, leases refreshed in the background and lost when they
 * cannot be refreshed for a whole TTL. `new MemoryStore()` has its own backend;
 * `new MemoryStore(other.backend)` is another client of the same one (another agent).
 */
import { ValidationError } from '../errors.js';
import { Backoff } from '../util/backoff.js';
import { StoreClosedError, StoreLeaseLostError, StoreUnavailableError } from './errors.js';
import { LeaseLifecycle } from './lease-lifecycle.js';
import { keyOf, MemoryBackend, type BackendSubscriber } from './memory-backend.js';
import type { KeyValue, Lease, ListResult, Store, Watch, WatchEvent, WatchHandlers, WatchOptions } from './store.js';
import { checkHandlers, checkKey, checkRevision, checkTtl, checkValue } from './validate.js';
import { WatchDelivery, type RevisionedEvent } from './watch-delivery.js';

const ENDPOINT = 'memory';

export class MemoryStore implements Store {
  private readonly watches = new Set<MemoryWatch>();
  private readonly leases = new Set<MemoryLease>();
  private closed = false;

  constructor(readonly backend: MemoryBackend = new MemoryBackend()) {}

  async get(key: string): Promise<KeyValue | null> {
    checkKey('key', key);
    this.ensureReachable('get');
    return this.backend.get(key);
  }

  async list(prefix: string): Promise<ListResult> {
    checkKey('prefix', prefix);
    this.ensureReachable('list');
    return this.backend.list(prefix);
  }

  async create(key: string, value: Buffer, opts?: { lease?: Lease }): Promise<{ created: boolean; kv: KeyValue }> {
    checkKey('key', key);
    const bytes = checkValue(value);
    const lease = this.leaseId(opts?.lease);
    this.ensureReachable('create');
    return this.backend.create(key, bytes, lease);
  }

  async update(
    key: string,
    value: Buffer,
    expectedModRevision: string,
    opts?: { lease?: Lease },
  ): Promise<{ updated: boolean; kv: KeyValue | null }> {
    checkKey('key', key);
    const bytes = checkValue(value);
    const expected = checkRevision('expectedModRevision', expectedModRevision, 1);
    const lease = this.leaseId(opts?.lease);
    this.ensureReachable('update');
    return this.backend.update(key, bytes, expected, lease);
  }

  async delete(key: string, expectedModRevision?: string): Promise<boolean> {
    checkKey('key', key);
    const expected = expectedModRevision === undefined ? undefined : checkRevision('expectedModRevision', expectedModRevision, 1);
    this.ensureReachable('delete');
    return this.backend.delete(key, expected);
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    const ttl = checkTtl(ttlSeconds);
    this.ensureReachable('grantLease');
    const lease = new MemoryLease(this, this.backend.grantLease(ttl), ttl);
    this.leases.add(lease);
    return lease;
  }

  async watch(prefix: string, handlers: WatchHandlers, opts?: WatchOptions): Promise<Watch> {
    checkKey('prefix', prefix);
    checkHandlers(handlers);
    const after = opts?.afterRevision === undefined ? undefined : checkRevision('afterRevision', opts.afterRevision, 0);
    this.ensureReachable('watch');
    const w = new MemoryWatch(this, prefix, handlers, after ?? BigInt(this.backend.currentRevision()));
    this.watches.add(w);
    w.resume();
    return w;
  }

  /** Closes every watch and stops refreshing leases (they lapse at their TTL). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watches]) await w.close();
    for (const l of [...this.leases]) l.stop();
  }

  /** @internal Rejects when closed or while the backend is disconnected. */
  ensureReachable(op: string): void {
    if (this.closed) throw new StoreClosedError(`Cannot ${op}: the store was closed; create a new one`);
    if (!this.backend.online) {
      throw new StoreUnavailableError(
        [ENDPOINT],
        `Cannot reach store "${ENDPOINT}" (${op}): it is disconnected (simulated outage); call backend.reconnect()`,
      );
    }
  }

  /** @internal */
  get reachable(): boolean {
    return this.backend.online && !this.closed;
  }

  /** @internal */
  forget(x: MemoryWatch | MemoryLease): void {
    if (x instanceof MemoryWatch) this.watches.delete(x);
    else this.leases.delete(x);
  }

  private leaseId(lease: Lease | undefined): string | undefined {
    if (lease === undefined) return undefined;
    if (!(lease instanceof MemoryLease) || !lease.belongsTo(this)) {
      throw new ValidationError('lease', "Lease was not granted by this store: pass a lease from this store's grantLease()");
    }
    if (!lease.alive || !this.backend.hasLease(lease.id)) {
      throw new StoreLeaseLostError(lease.id, `Lease "${lease.id}" was lost, revoked or expired: grant a new lease`);
    }
    return lease.id;
  }
}

class MemoryWatch implements Watch, BackendSubscriber {
  private readonly delivery: WatchDelivery;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff();

  constructor(
    private readonly store: MemoryStore,
    private readonly prefix: string,
    handlers: WatchHandlers,
    after: bigint,
  ) {
    this.delivery = new WatchDelivery(prefix, handlers, after, () => this.teardown());
  }

  /** (Re)subscribes: history after the last queued revision, then live writes. */
  resume(): void {
    this.retry = undefined;
    if (this.closed) return;
    if (!this.store.reachable) {
      this.scheduleRetry();
      return;
    }
    let missed: RevisionedEvent[];
    try {
      missed = this.store.backend.subscribe(this.prefix, this.delivery.resumeAfter, this);
    } catch (err) {
      this.delivery.fail(err as Error);
      return;
    }
    this.backoff.reset();
    if (missed.length) this.delivery.pushBatch(missed.map(clone));
  }

  live(batch: RevisionedEvent[]): void {
    const mine = batch.filter((e) => keyOf(e.event).startsWith(this.prefix));
    if (mine.length) this.delivery.pushBatch(mine.map(clone));
  }

  broke(): void {
    this.scheduleRetry();
  }

  async close(): Promise<void> {
    this.delivery.close();
    this.teardown();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => this.resume(), this.backoff.next());
  }

  private teardown(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.store.backend.unsubscribe(this);
    this.store.forget(this);
  }
}

class MemoryLease implements Lease {
  private readonly life: LeaseLifecycle;
  private readonly refresher: NodeJS.Timeout;
  private deadline: NodeJS.Timeout;

  constructor(
    private readonly store: MemoryStore,
    readonly id: string,
    readonly ttlSeconds: number,
  ) {
    this.life = new LeaseLifecycle(id);
    this.refresher = setInterval(() => this.refresh(), Math.max(100, (ttlSeconds * 1000) / 3));
    this.refresher.unref();
    this.deadline = this.armDeadline(Date.now());
  }

  belongsTo(store: MemoryStore): boolean {
    return this.store === store;
  }

  /** True while the lease is refreshed (not lost, not revoked). */
  get alive(): boolean {
    return this.life.alive;
  }

  onLost(fn: (err: Error) => void): void {
    this.life.onLost(fn);
  }

  /** Stops refreshing, then revokes; if the store is unreachable this rejects and the lease lapses at its TTL. */
  async revoke(): Promise<void> {
    if (!this.life.revoke()) return;
    this.stop();
    this.store.ensureReachable('revoke lease');
    this.store.backend.revokeLease(this.id);
  }

  /** Stops refreshing without revoking (the store closing). */
  stop(): void {
    clearInterval(this.refresher);
    clearTimeout(this.deadline);
    this.store.forget(this);
  }

  private refresh(): void {
    if (!this.life.alive || !this.store.reachable) return; // the deadline decides
    const sentAt = Date.now();
    if (this.store.backend.refreshLease(this.id) === 0) {
      this.lose(`Lease "${this.id}" expired in the store and its keys were deleted: grant a new lease and write them again`);
      return;
    }
    clearTimeout(this.deadline);
    this.deadline = this.armDeadline(sentAt);
  }

  private armDeadline(refreshedAt: number): NodeJS.Timeout {
    const t = setTimeout(
      () =>
        this.lose(
          `Lease "${this.id}" could not be refreshed for its whole TTL of ${this.ttlSeconds} s (store unreachable); its keys are gone or going: grant a new lease and write them again`,
        ),
      Math.max(0, refreshedAt + this.ttlSeconds * 1000 - Date.now()),
    );
    t.unref();
    return t;
  }

  private lose(message: string): void {
    const err = this.life.lose(message);
    if (!err) return;
    this.stop();
    // The backend may still hold the lease (cut off, not expired): make sure its keys go.
    if (this.store.reachable) this.store.backend.revokeLease(this.id);
    this.life.notifyLost(err);
  }
}

function clone(e: RevisionedEvent): RevisionedEvent {
  const ev: WatchEvent = e.event.type === 'put' ? { type: 'put', kv: { ...e.event.kv, value: Buffer.from(e.event.kv.value) } } : { ...e.event };
  return { revision: e.revision, event: ev };
}
