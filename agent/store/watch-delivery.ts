/**
 * The delivery half of a watch, shared by every Store implementation: it takes batches of
 * events as the store's stream produces them (possibly repeated after a reconnect), drops every
 * event at or below the last revision already queued, and calls onEvent one at a time, in
 * revision order, waiting for each returned promise. The implementation only has to resume its
 * stream after `resumeAfter`; exactly-once, in-order delivery is decided here, in one place.
 *
 * A batch must contain whole revisions (one write's events are never split across batches),
 * which holds for both the memory store and etcd watch responses (with fragments reassembled).
 */
import { WatchHandlerError } from './errors.js';
import type { WatchEvent, WatchHandlers } from './store.js';

export interface RevisionedEvent {
  revision: bigint;
  event: WatchEvent;
}

export class WatchDelivery {
  private queue: RevisionedEvent[] = [];
  private lastQueued: bigint;
  private draining = false;
  private stopped = false;
  private pendingError: Error | null = null;

  /**
   * @param onStop called once when delivery stops on its own (an error was delivered), so the
   *   implementation can tear its stream down.
   */
  constructor(
    private readonly prefix: string,
    private readonly handlers: WatchHandlers,
    afterRevision: bigint,
    private readonly onStop: () => void,
  ) {
    this.lastQueued = afterRevision;
  }

  /** The revision to resume after: every event up to it has been queued or delivered. */
  get resumeAfter(): bigint {
    return this.lastQueued;
  }

  get stoppedOrFailing(): boolean {
    return this.stopped || this.pendingError !== null;
  }

  /** Queues one batch of whole revisions, in order; events already queued are dropped. */
  pushBatch(events: RevisionedEvent[]): void {
    if (this.stoppedOrFailing) return;
    const floor = this.lastQueued;
    let top = floor;
    for (const e of events) {
      if (e.revision <= floor || e.revision < top) continue;
      this.queue.push(e);
      top = e.revision;
    }
    this.lastQueued = top;
    this.scheduleDrain();
  }

  /** The store confirmed that nothing under the prefix changed up to `revision`. */
  advance(revision: bigint): void {
    if (!this.stoppedOrFailing && revision > this.lastQueued) this.lastQueued = revision;
  }

  /** The watch cannot continue: deliver what is queued, then onError once, then stop. */
  fail(err: Error): void {
    if (this.stoppedOrFailing) return;
    this.pendingError = err;
    this.scheduleDrain();
  }

  /** Stops delivery at once: no onEvent or onError call starts after this. */
  close(): void {
    this.stopped = true;
    this.queue = [];
  }

  private scheduleDrain(): void {
    if (this.draining) return;
    this.draining = true;
    // Deliver on a later microtask, never inside the writer's or the stream's call stack.
    queueMicrotask(() => void this.drain());
  }

  private async drain(): Promise<void> {
    try {
      while (!this.stopped) {
        const next = this.queue.shift();
        if (!next) break;
        try {
          await this.handlers.onEvent(next.event);
        } catch (err) {
          this.stopWith(
            new WatchHandlerError(
              `Watch on "${this.prefix}" stopped at revision "${next.revision}": its onEvent handler threw: fix the handler, then list and watch again`,
              { cause: err },
            ),
          );
          return;
        }
      }
      if (!this.stopped && this.pendingError) this.stopWith(this.pendingError);
    } finally {
      this.draining = false;
      if (!this.stopped && (this.queue.length > 0 || this.pendingError)) this.scheduleDrain();
    }
  }

  private stopWith(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.queue = [];
    this.onStop();
    try {
      this.handlers.onError(err);
    } catch {
      // The caller's error handler failing must not crash the store's stream callbacks.
    }
  }
}
