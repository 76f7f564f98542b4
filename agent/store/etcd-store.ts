/**
 * The Store on a real etcd (v3 API, tested against Debian's etcd 3.4) through the etcd3 gRPC
 * client. Mapping (see docs/store.md):
 * - get: Range(key); list: Range(prefix, range_end) in pages pinned to the first page's revision,
 *   so the whole list is consistent at one revision.
 * - create: Txn(if create_revision(key) == 0 then Put else Range).
 * - update: Txn(if mod_revision(key) == expected then Put(prev_kv) else Range); without a lease
 *   the key keeps its own (ignore_lease).
 * - delete: DeleteRange, or Txn(if mod_revision == expected then DeleteRange).
 * - leases: LeaseGrant, LeaseKeepAlive stream (etcd-lease.ts), LeaseRevoke.
 * - watch: one Watch stream per watch (etcd-watch.ts).
 *
 * etcd3's own retries and circuit breaker are turned off: every request has a deadline
 * (requestTimeoutMs) and fails with a typed error; only watch streams and keep-alives retry,
 * with bounded backoff, because nobody else could.
 */
import etcd3 from 'etcd3';
import { noop } from 'cockatiel';
import { moduleLogger, type Logger } from '../log/logger.js';
import { StoreClosedError, StoreLeaseLostError, StoreRequestError } from './errors.js';
import { toStoreError } from './etcd-errors.js';
import { kvFromEtcd, prefixRangeEnd } from './etcd-kv.js';
import { EtcdLease } from './etcd-lease.js';
import { resolveEtcdOptions, type EtcdStoreOptions, type ResolvedEtcdOptions } from './etcd-options.js';
import { EtcdWatch } from './etcd-watch.js';
import type { KeyValue, Lease, ListResult, Store, Watch, WatchHandlers, WatchOptions } from './store.js';
import { checkHandlers, checkKey, checkRevision, checkTtl, checkValue, quote } from './validate.js';
import { ValidationError } from '../errors.js';

export type { EtcdStoreOptions } from './etcd-options.js';

/** Keys per list page: at most ~64 MiB per reply with 1 MiB values. */
const LIST_PAGE = 64;
/** A list whose pinned revision is compacted between pages starts over, this many times. */
const LIST_ATTEMPTS = 3;

export class EtcdStore implements Store {
  readonly endpoints: string[];
  private readonly opts: ResolvedEtcdOptions;
  private readonly client: etcd3.Etcd3;
  private readonly log: Logger | undefined;
  private readonly watches = new Set<EtcdWatch>();
  private readonly leases = new Set<EtcdLease>();
  private closed = false;

  /** Validates the options (ConfigError) and creates the client; nothing is sent yet. */
  constructor(options: EtcdStoreOptions) {
    this.opts = resolveEtcdOptions(options);
    this.endpoints = this.opts.endpoints;
    this.log = this.opts.logger ? moduleLogger(this.opts.logger, 'store') : undefined;
    this.client = new etcd3.Etcd3({
      hosts: this.endpoints,
      faultHandling: { host: () => noop, global: noop },
      grpcOptions: {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': this.opts.maxBackoffMs,
        'grpc.max_receive_message_length': 80 * 1024 * 1024,
      },
    });
  }

  /** Checks that etcd answers (StoreUnavailableError naming the endpoints if not). */
  async ping(op = 'ping'): Promise<string> {
    const res = await this.call(op, 'etcd', () => this.client.kv.range({ key: Buffer.from('/'), count_only: true }, this.deadline()));
    return res.header.revision;
  }

  async get(key: string): Promise<KeyValue | null> {
    checkKey('key', key);
    const res = await this.call('get', `"${key}"`, () => this.client.kv.range({ key: Buffer.from(key) }, this.deadline()));
    const kv = res.kvs[0];
    return kv ? kvFromEtcd(kv) : null;
  }

  async list(prefix: string): Promise<ListResult> {
    checkKey('prefix', prefix);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.listOnce(prefix);
      } catch (err) {
        if (!(err instanceof StoreRequestError && /compacted/.test(err.message)) || attempt >= LIST_ATTEMPTS) throw err;
      }
    }
  }

  private async listOnce(prefix: string): Promise<ListResult> {
    const key = Buffer.from(prefix);
    const end = prefixRangeEnd(key);
    const items: KeyValue[] = [];
    let start = key;
    let revision: string | undefined;
    for (;;) {
      const res = await this.call('list', `"${prefix}"`, () =>
        this.client.kv.range({ key: start, range_end: end, limit: LIST_PAGE, revision: revision ?? 0 }, this.deadline()),
      );
      revision ??= res.header.revision;
      for (const kv of res.kvs) items.push(kvFromEtcd(kv));
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) break;
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { items, revision };
  }

  async create(key: string, value: Buffer, opts?: { lease?: Lease }): Promise<{ created: boolean; kv: KeyValue }> {
    checkKey('key', key);
    const bytes = checkValue(value);
    const lease = this.leaseId(opts?.lease);
    const k = Buffer.from(key);
    const res = await this.call(
      'create',
      `"${key}"`,
      () =>
        this.client.kv.txn(
          {
            compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }],
            success: [{ request_put: { key: k, value: bytes, lease: lease ?? 0 } }],
            failure: [{ request_range: { key: k } }],
          },
          this.deadline(),
        ),
      lease,
    );
    if (res.succeeded) {
      const kv: KeyValue = { key, value: bytes, createRevision: res.header.revision, modRevision: res.header.revision };
      if (lease) kv.lease = lease;
      return { created: true, kv };
    }
    const existing = res.responses[0]?.response_range?.kvs[0];
    if (!existing) throw new StoreRequestError('create', `The etcd server answered create "${key}" with neither a write nor the existing key: retry`);
    return { created: false, kv: kvFromEtcd(existing) };
  }

  async update(
    key: string,
    value: Buffer,
    expectedModRevision: string,
    opts?: { lease?: Lease },
  ): Promise<{ updated: boolean; kv: KeyValue | null }> {
    checkKey('key', key);
    const bytes = checkValue(value);
    checkRevision('expectedModRevision', expectedModRevision, 1);
    const lease = this.leaseId(opts?.lease);
    const k = Buffer.from(key);
    const put = lease
      ? { key: k, value: bytes, lease, prev_kv: true }
      : { key: k, value: bytes, ignore_lease: true, prev_kv: true };
    const res = await this.call(
      'update',
      `"${key}"`,
      () =>
        this.client.kv.txn(
          {
            compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: expectedModRevision }],
            success: [{ request_put: put }],
            failure: [{ request_range: { key: k } }],
          },
          this.deadline(),
        ),
      lease,
    );
    if (!res.succeeded) {
      const current = res.responses[0]?.response_range?.kvs[0];
      return { updated: false, kv: current ? kvFromEtcd(current) : null };
    }
    const prev = res.responses[0]?.response_put?.prev_kv;
    const kv: KeyValue = {
      key,
      value: bytes,
      createRevision: prev?.create_revision ?? res.header.revision,
      modRevision: res.header.revision,
    };
    const attached = lease ?? (prev?.lease && prev.lease !== '0' ? prev.lease : undefined);
    if (attached) kv.lease = attached;
    return { updated: true, kv };
  }

  async delete(key: string, expectedModRevision?: string): Promise<boolean> {
    checkKey('key', key);
    if (expectedModRevision !== undefined) checkRevision('expectedModRevision', expectedModRevision, 1);
    const k = Buffer.from(key);
    if (expectedModRevision === undefined) {
      const res = await this.call('delete', `"${key}"`, () => this.client.kv.deleteRange({ key: k }, this.deadline()));
      return res.deleted !== '0';
    }
    const res = await this.call('delete', `"${key}"`, () =>
      this.client.kv.txn(
        {
          compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: expectedModRevision }],
          success: [{ request_delete_range: { key: k } }],
          failure: [],
        },
        this.deadline(),
      ),
    );
    return res.succeeded && (res.responses[0]?.response_delete_range?.deleted ?? '0') !== '0';
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    const ttl = checkTtl(ttlSeconds);
    const sentAt = Date.now();
    const res = await this.call('grantLease', `with TTL ${ttl} s`, () => this.client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 }, this.deadline()));
    if (res.error) throw new StoreRequestError('grantLease', `The etcd server refused a lease with TTL ${ttl} s: ${res.error}`);
    const granted = Number(res.TTL);
    const lease = new EtcdLease(
      {
        leaseClient: this.client.leaseClient,
        endpoints: this.endpoints,
        requestTimeoutMs: this.opts.requestTimeoutMs,
        maxBackoffMs: this.opts.maxBackoffMs,
        log: this.log,
        owner: this,
        forget: (l) => this.leases.delete(l),
      },
      res.ID,
      Number.isInteger(granted) && granted >= ttl ? granted : ttl,
      sentAt,
    );
    this.leases.add(lease);
    return lease;
  }

  async watch(prefix: string, handlers: WatchHandlers, opts?: WatchOptions): Promise<Watch> {
    checkKey('prefix', prefix);
    checkHandlers(handlers);
    let after: bigint;
    if (opts?.afterRevision !== undefined) after = checkRevision('afterRevision', opts.afterRevision, 0);
    else after = BigInt(await this.ping('watch'));
    this.ensureOpen('watch', `"${prefix}"`);
    const w = new EtcdWatch(
      {
        watchClient: this.client.watchClient,
        endpoints: this.endpoints,
        requestTimeoutMs: this.opts.requestTimeoutMs,
        maxBackoffMs: this.opts.maxBackoffMs,
        log: this.log,
        forget: (x) => this.watches.delete(x),
      },
      prefix,
      handlers,
      after,
    );
    this.watches.add(w);
    try {
      await w.start();
    } catch (err) {
      await w.close();
      throw err;
    }
    return w;
  }

  /** Closes every watch, stops refreshing leases (they lapse at their TTL) and the client. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watches]) await w.close();
    for (const l of [...this.leases]) l.stop();
    this.client.close();
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.opts.requestTimeoutMs };
  }

  private ensureOpen(op: string, subject: string): void {
    if (this.closed) throw new StoreClosedError(`Cannot ${op} ${subject}: the store was closed; create a new one`);
  }

  private async call<T>(op: string, subject: string, fn: () => Promise<T>, leaseId?: string): Promise<T> {
    this.ensureOpen(op, subject);
    try {
      return await fn();
    } catch (err) {
      throw toStoreError(err, this.endpoints, op, subject, leaseId);
    }
  }

  private leaseId(lease: Lease | undefined): string | undefined {
    if (lease === undefined) return undefined;
    if (!(lease instanceof EtcdLease) || !lease.belongsTo(this)) {
      throw new ValidationError('lease', `Lease ${quote((lease as { id?: unknown })?.id)} was not granted by this store: pass a lease from this store's grantLease()`);
    }
    if (!lease.alive) {
      throw new StoreLeaseLostError(lease.id, `Lease "${lease.id}" was lost or revoked and is no longer refreshed: grant a new lease`);
    }
    return lease.id;
  }
}

/** Creates the store and checks that etcd answers: a typed error within requestTimeoutMs if not. */
export async function openEtcdStore(options: EtcdStoreOptions): Promise<EtcdStore> {
  const store = new EtcdStore(options);
  try {
    await store.ping();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
