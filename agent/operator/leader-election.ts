/**
 * One active operator replica: the leader holds a store key attached to its lease
 * (`/veil/operator/leader` = {"v":1,"id":ID}). Campaigning is a compare-and-swap create, so at
 * most one replica is leader at a time; the others retry every `retryMs`. The leader's work runs
 * with an AbortSignal that is aborted when the lease is lost (the key is gone with it, so another
 * replica may already lead) or when the election stops. Stopping revokes the lease, which deletes
 * the key: a standby takes over at its next try instead of after the lease's TTL.
 */
import { VeilError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Lease, Store } from '../store/store.js';
import { abortableSleep } from '../util/abortable-sleep.js';

export const LEADER_KEY = '/veil/operator/leader';

export class LeaderElectionError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_OPERATOR_LEADER', message, options);
  }
}

export interface LeaderElectionOptions {
  store: Store;
  /** This replica's name, written into the leader record. */
  id: string;
  ttlSeconds: number;
  /** How often a standby tries to become leader (default 1000 ms). */
  retryMs?: number;
  key?: string;
  log?: Logger;
  /** The leader's work; runs until `signal` aborts (lease lost or stop). */
  lead(signal: AbortSignal): Promise<void>;
  /** Leadership changed (for health and metrics). */
  onChange?(leader: boolean): void;
}

export class LeaderElection {
  readonly #o: LeaderElectionOptions;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #leader = false;
  #lease: Lease | undefined;

  constructor(opts: LeaderElectionOptions) {
    if (!Number.isInteger(opts.ttlSeconds) || opts.ttlSeconds < 2 || opts.ttlSeconds > 300) {
      throw new LeaderElectionError(`Invalid leader lease TTL ${JSON.stringify(opts.ttlSeconds)}: use 2 to 300 seconds`);
    }
    this.#o = opts;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** Starts campaigning in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** The current leader's id from the store, or null. */
  async currentLeader(): Promise<string | null> {
    const kv = await this.#o.store.get(this.#o.key ?? LEADER_KEY);
    if (!kv) return null;
    try {
      const v = JSON.parse(kv.value.toString('utf8')) as { id?: unknown };
      return typeof v.id === 'string' ? v.id : null;
    } catch {
      return null;
    }
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    const key = this.#o.key ?? LEADER_KEY;
    while (!stop.aborted) {
      try {
        const lease = await this.#o.store.grantLease(this.#o.ttlSeconds);
        const r = await this.#o.store.create(key, Buffer.from(JSON.stringify({ v: 1, id: this.#o.id })), { lease });
        if (!r.created) {
          await lease.revoke().catch(() => undefined);
        } else {
          this.#lease = lease;
          await this.#lead(lease, stop);
          this.#lease = undefined;
          await lease.revoke().catch(() => undefined);
        }
      } catch (err) {
        if (stop.aborted) break;
        this.#o.log?.warn({ err }, 'Leader election failed; retrying');
      }
      await abortableSleep(this.#o.retryMs ?? 1000, stop);
    }
  }

  async #lead(lease: Lease, stop: AbortSignal): Promise<void> {
    const term = new AbortController();
    const onStop = () => term.abort(new LeaderElectionError('The operator is stopping'));
    stop.addEventListener('abort', onStop, { once: true });
    lease.onLost((err) => {
      this.#o.log?.warn({ err }, 'Leader lease lost: stepping down');
      term.abort(err);
    });
    this.#setLeader(true);
    this.#o.log?.info({ id: this.#o.id }, 'Became the active operator');
    try {
      await this.#o.lead(term.signal);
      // The work returned on its own: hold leadership until the term ends.
      if (!term.signal.aborted) await new Promise((r) => term.signal.addEventListener('abort', r, { once: true }));
    } catch (err) {
      if (!term.signal.aborted) this.#o.log?.error({ err }, 'Leader work failed: stepping down');
    } finally {
      stop.removeEventListener('abort', onStop);
      this.#setLeader(false);
    }
  }

  #setLeader(v: boolean): void {
    if (this.#leader === v) return;
    this.#leader = v;
    this.#o.onChange?.(v);
  }

  /** Stops campaigning; a leader ends its work and gives up the key. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#lease?.revoke().catch(() => undefined);
    await this.#loop;
  }
}

