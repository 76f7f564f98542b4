/**
 * An etcd lease kept alive in the background over one LeaseKeepAlive stream: a keep-alive every
 * TTL/3; a broken stream is reopened with bounded backoff. The lease counts as lost — onLost
 * handlers run once — when etcd answers a keep-alive with TTL 0 (it expired and its keys were
 * deleted) or when no keep-alive was acknowledged for a whole TTL counted from the moment the
 * last acknowledged one was sent (etcd may already have expired it). On loss the lease is
 * revoked best-effort, so that keys of a lease that only looked lost (a partition) go too.
 */
import type etcd3 from 'etcd3';
import type { Logger } from '../log/logger.js';
import { Backoff } from '../util/backoff.js';
import { StoreLeaseLostError } from './errors.js';
import { toStoreError } from './etcd-errors.js';
import { LeaseLifecycle } from './lease-lifecycle.js';
import type { Lease } from './store.js';

type LeaseStream = Awaited<ReturnType<etcd3.LeaseClient['leaseKeepAlive']>>;

export interface EtcdLeaseContext {
  leaseClient: etcd3.LeaseClient;
  endpoints: string[];
  requestTimeoutMs: number;
  maxBackoffMs: number;
  log: Logger | undefined;
  /** The store that granted the lease. */
  owner: object;
  forget(lease: EtcdLease): void;
}

export class EtcdLease implements Lease {
  private readonly life: LeaseLifecycle;
  private stream: LeaseStream | undefined;
  private opening = false;
  /** Send times of the keep-alives not yet answered on the current stream, oldest first. */
  private unanswered: number[] = [];
  private readonly ticker: NodeJS.Timeout;
  private deadline: NodeJS.Timeout;
  private reopen: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;

  constructor(
    private readonly ctx: EtcdLeaseContext,
    readonly id: string,
    readonly ttlSeconds: number,
    grantSentAt: number,
  ) {
    this.life = new LeaseLifecycle(id);
    this.backoff = new Backoff(100, ctx.maxBackoffMs);
    this.deadline = this.armDeadline(grantSentAt);
    this.ticker = setInterval(() => this.keepAlive(), Math.max(100, (ttlSeconds * 1000) / 3));
    this.ticker.unref();
    this.openStream();
  }

  onLost(fn: (err: Error) => void): void {
    this.life.onLost(fn);
  }

  /**
   * Stops refreshing, then revokes: etcd deletes the attached keys at once. If etcd cannot be
   * reached the call rejects, and the keys go when the TTL lapses.
   */
  async revoke(): Promise<void> {
    if (!this.life.revoke()) return;
    this.stop();
    try {
      await this.ctx.leaseClient.leaseRevoke({ ID: this.id }, { deadline: Date.now() + this.ctx.requestTimeoutMs });
    } catch (err) {
      const mapped = toStoreError(err, this.ctx.endpoints, 'revoke', `lease "${this.id}"`, this.id);
      if (mapped instanceof StoreLeaseLostError) return; // already gone: that is what was asked
      throw mapped;
    }
  }

  belongsTo(store: object): boolean {
    return this.ctx.owner === store;
  }

  /** True when the lease can still have keys attached. */
  get alive(): boolean {
    return this.life.alive;
  }

  /** Stops refreshing without revoking (the store closing); the lease lapses at its TTL. */
  stop(): void {
    clearInterval(this.ticker);
    clearTimeout(this.deadline);
    clearTimeout(this.reopen);
    this.dropStream();
    this.ctx.forget(this);
  }

  private keepAlive(): void {
    if (!this.life.alive || !this.stream) return;
    this.unanswered.push(Date.now());
    try {
      this.stream.write({ ID: this.id });
    } catch {
      this.streamBroke(this.stream);
    }
  }

  private openStream(): void {
    if (!this.life.alive || this.stream || this.opening) return;
    this.opening = true;
    this.ctx.leaseClient.leaseKeepAlive().then(
      (stream) => {
        this.opening = false;
        if (!this.life.alive) {
          stream.on('error', () => undefined);
          stream.cancel();
          return;
        }
        this.stream = stream;
        this.unanswered = [];
        stream.on('data', (res) => this.answered(stream, res.TTL));
        stream.on('error', () => this.streamBroke(stream));
        stream.on('end', () => this.streamBroke(stream));
        this.keepAlive();
      },
      () => {
        this.opening = false;
        this.scheduleReopen();
      },
    );
  }

  private answered(stream: LeaseStream, ttl: string): void {
    if (stream !== this.stream || !this.life.alive) return;
    const sentAt = this.unanswered.shift() ?? Date.now();
    if (ttl === '0' || Number(ttl) <= 0) {
      this.lose(`Lease "${this.id}" expired in etcd and its keys were deleted: grant a new lease and write them again`);
      return;
    }
    this.backoff.reset();
    clearTimeout(this.deadline);
    this.deadline = this.armDeadline(sentAt);
  }

  private streamBroke(stream: LeaseStream): void {
    if (stream !== this.stream) return;
    this.dropStream();
    this.scheduleReopen();
  }

  private dropStream(): void {
    const s = this.stream;
    this.stream = undefined;
    this.unanswered = [];
    try {
      s?.cancel();
    } catch {
      // already closed
    }
  }

  private scheduleReopen(): void {
    if (!this.life.alive || this.reopen) return;
    this.reopen = setTimeout(() => {
      this.reopen = undefined;
      this.openStream();
    }, this.backoff.next());
    this.reopen.unref();
  }

  private armDeadline(ackedSendTime: number): NodeJS.Timeout {
    const t = setTimeout(
      () =>
        this.lose(
          `Lease "${this.id}" could not be refreshed for its whole TTL of ${this.ttlSeconds} s (etcd at ${this.ctx.endpoints.join(', ')} unreachable); its keys are gone or going: grant a new lease and write them again`,
        ),
      Math.max(0, ackedSendTime + this.ttlSeconds * 1000 - Date.now()),
    );
    t.unref();
    return t;
  }

  private lose(message: string): void {
    const err = this.life.lose(message);
    if (!err) return;
    this.stop();
    this.ctx.log?.warn({ lease: this.id, err }, 'Store lease lost');
    // Best effort: if etcd still holds the lease (we were cut off, it was not), drop its keys now.
    this.ctx.leaseClient
      .leaseRevoke({ ID: this.id }, { deadline: Date.now() + this.ctx.requestTimeoutMs })
      .catch(() => undefined);
    this.life.notifyLost(err);
  }
}
