/**
 * One etcd watch on a prefix, over its own gRPC Watch stream. The stream asks etcd for every
 * event after the last revision queued for delivery (`start_revision = resumeAfter + 1`), with
 * fragmented responses reassembled so that a revision is never split. When the stream breaks
 * (etcd restarted, connection lost, no reply to the create request in time) it is reopened with
 * bounded backoff from the same point; WatchDelivery drops anything already queued, so every
 * event arrives exactly once, in order. etcd cancelling the watch because that revision was
 * compacted ends it with StoreCompactedError (VEIL_STORE_COMPACTED) through onError.
 *
 * etcd3's own Watcher is not used: it resumes from the revision in the response header, which
 * during a catch-up is the store's current revision, not the last event sent, so a second
 * disconnect during catch-up would skip events.
 */
import type etcd3 from 'etcd3';
import type { Logger } from '../log/logger.js';
import { Backoff } from '../util/backoff.js';
import { StoreCompactedError, StoreRequestError } from './errors.js';
import { isTransient, toStoreError, unavailable } from './etcd-errors.js';
import { kvFromEtcd, prefixRangeEnd } from './etcd-kv.js';
import type { Watch, WatchHandlers } from './store.js';
import { WatchDelivery, type RevisionedEvent } from './watch-delivery.js';

type WatchStream = Awaited<ReturnType<etcd3.WatchClient['watch']>>;
type WatchResponse = etcd3.IWatchResponse;

export interface EtcdWatchContext {
  watchClient: etcd3.WatchClient;
  endpoints: string[];
  requestTimeoutMs: number;
  maxBackoffMs: number;
  log: Logger | undefined;
  forget(w: EtcdWatch): void;
}

export class EtcdWatch implements Watch {
  private readonly delivery: WatchDelivery;
  private readonly backoff: Backoff;
  private readonly keyBytes: Buffer;
  private closed = false;
  /** Incremented for every stream; callbacks of an older stream are ignored. */
  private generation = 0;
  private stream: WatchStream | undefined;
  private retry: NodeJS.Timeout | undefined;
  private fragments: etcd3.IEvent[] = [];

  constructor(
    private readonly ctx: EtcdWatchContext,
    private readonly prefix: string,
    handlers: WatchHandlers,
    after: bigint,
  ) {
    this.keyBytes = Buffer.from(prefix, 'utf8');
    this.backoff = new Backoff(100, ctx.maxBackoffMs);
    this.delivery = new WatchDelivery(prefix, handlers, after, () => this.shutdown());
  }

  /** Opens the first stream: resolves once etcd created the watch, rejects if it cannot be reached. */
  async start(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    this.delivery.close();
    this.shutdown();
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    this.dropStream();
    this.ctx.forget(this);
  }

  private dropStream(): void {
    this.generation++;
    const s = this.stream;
    this.stream = undefined;
    this.fragments = [];
    if (s) {
      s.on('error', () => undefined);
      try {
        s.cancel();
      } catch {
        // already closed
      }
    }
  }

  /** Opens a stream from `resumeAfter + 1`; resolves when created (or when the watch ended). */
  private async connect(): Promise<void> {
    this.dropStream();
    const gen = this.generation;
    let stream: WatchStream;
    try {
      stream = await this.ctx.watchClient.watch();
    } catch (err) {
      throw toStoreError(err, this.ctx.endpoints, 'watch', `"${this.prefix}"`);
    }
    if (this.closed || gen !== this.generation) {
      stream.on('error', () => undefined);
      stream.cancel();
      return;
    }
    this.stream = stream;
    const startRevision = this.delivery.resumeAfter + 1n;

    await new Promise<void>((resolve, reject) => {
      let created = false;
      const settle = (err?: Error) => {
        clearTimeout(timer);
        if (created) return;
        created = true; // settled: later failures go to broke()
        if (err) reject(err);
        else resolve();
      };
      const fail = (err: Error) => {
        if (gen !== this.generation) return;
        this.dropStream();
        if (!created) settle(err);
        else this.broke(err);
      };
      const timer = setTimeout(
        () => fail(unavailable(this.ctx.endpoints, 'watch', `no reply to the watch request within ${this.ctx.requestTimeoutMs} ms`)),
        this.ctx.requestTimeoutMs,
      );
      timer.unref();

      stream.on('data', (res: WatchResponse) => {
        if (gen !== this.generation) return;
        if (res.canceled) {
          this.cancelled(res, startRevision);
          settle();
          return;
        }
        if (res.created) {
          this.backoff.reset();
          settle();
          return;
        }
        this.received(res);
      });
      stream.on('error', (err: Error) => fail(toStoreError(err, this.ctx.endpoints, 'watch', `"${this.prefix}"`)));
      stream.on('end', () => fail(unavailable(this.ctx.endpoints, 'watch', 'etcd ended the watch stream')));
      stream.write({
        create_request: {
          key: this.keyBytes,
          range_end: prefixRangeEnd(this.keyBytes),
          start_revision: startRevision.toString(),
          progress_notify: true,
          fragment: true,
        },
      });
    });
  }

  private received(res: WatchResponse): void {
    if (res.fragment) {
      this.fragments.push(...res.events);
      return;
    }
    const events = this.fragments.length ? [...this.fragments.splice(0), ...res.events] : res.events;
    if (events.length === 0) {
      // A progress notification: etcd sends these only to watchers that have every event up to
      // the header revision, so resuming after it loses nothing.
      this.delivery.advance(BigInt(res.header.revision));
      return;
    }
    this.delivery.pushBatch(events.map(toRevisioned));
  }

  private cancelled(res: WatchResponse, startRevision: bigint): void {
    const compacted = res.compact_revision && res.compact_revision !== '0';
    const err = compacted
      ? new StoreCompactedError(
          startRevision.toString(),
          res.compact_revision,
          `Watch on "${this.prefix}" cannot resume at revision "${startRevision}": etcd compacted history up to "${res.compact_revision}"; list again and watch from the list's revision`,
        )
      : new StoreRequestError('watch', `The etcd server cancelled the watch on "${this.prefix}": ${res.cancel_reason || 'no reason given'}`);
    this.dropStream();
    this.delivery.fail(err);
  }

  /** The stream broke after it was created: reconnect with backoff, from where delivery is. */
  private broke(err: Error): void {
    if (this.closed) return;
    this.ctx.log?.warn({ prefix: this.prefix, resumeAfter: this.delivery.resumeAfter.toString(), err }, 'Store watch stream broke; reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.closed) return;
      this.connect().catch((err: Error) => {
        if (this.closed) return;
        if (isTransient(err)) this.scheduleReconnect();
        else this.delivery.fail(err);
      });
    }, this.backoff.next());
  }
}

function toRevisioned(ev: etcd3.IEvent): RevisionedEvent {
  const revision = BigInt(ev.kv.mod_revision);
  if (ev.type === 'Delete') {
    return { revision, event: { type: 'delete', key: ev.kv.key.toString('utf8'), modRevision: ev.kv.mod_revision } };
  }
  return { revision, event: { type: 'put', kv: kvFromEtcd(ev.kv) } };
}
