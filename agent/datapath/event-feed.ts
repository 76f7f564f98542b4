/**
 * The agent's one consumer of datapath events: every event from the ring buffer reader becomes an
 * EventRecord, is counted, kept in a bounded history of recent events, and handed to the live
 * subscribers (the /events streams) whose filter it matches. Nothing here waits on a subscriber:
 * `send` returns false when a subscriber is too far behind (its own buffer is full) and that
 * subscriber is dropped, so a slow client never slows the reader or grows the agent's memory.
 * docs/agent.md "Events".
 */
import type { DatapathEvent } from './events.js';
import { eventMatches, type EventFilter } from './event-filter.js';
import { eventRecord, monotonicOffsetNs, monotonicToDate, type EventRecord } from './event-record.js';

export interface EventFeedOptions {
  /** Recent events kept for GET /events without follow (default 4096). */
  history?: number;
  /** At most this many live subscribers (default 32). */
  maxSubscribers?: number;
  /** Describes an identity for display (labels, reserved name, ipBlock prefix). */
  describe?: (id: number) => string | undefined;
  /** Called for every record (metrics). */
  onRecord?: (r: EventRecord) => void;
}

export interface EventSubscriber {
  filter: EventFilter;
  /** Delivers one record; false = the subscriber is too slow and must be dropped. */
  send(r: EventRecord): boolean;
  /** The feed dropped the subscriber (too slow, or the feed closed). */
  dropped(reason: 'slow' | 'closed'): void;
}

export interface EventFeedStats {
  received: number;
  drops: number;
  flows: number;
  subscribers: number;
  /** Subscribers dropped because they could not keep up. */
  slowSubscribers: number;
}

export class EventFeed {
  readonly #history: (EventRecord | undefined)[];
  #head = 0;
  #size = 0;
  readonly #subs = new Set<EventSubscriber>();
  readonly #maxSubscribers: number;
  readonly #describe: ((id: number) => string | undefined) | undefined;
  readonly #onRecord: ((r: EventRecord) => void) | undefined;
  /** One clock offset for every event: times keep the order of the kernel's timestamps. */
  readonly #offsetNs = monotonicOffsetNs();
  readonly stats: EventFeedStats = { received: 0, drops: 0, flows: 0, subscribers: 0, slowSubscribers: 0 };

  constructor(opts: EventFeedOptions = {}) {
    this.#history = new Array<EventRecord | undefined>(Math.max(1, opts.history ?? 4096));
    this.#maxSubscribers = opts.maxSubscribers ?? 32;
    this.#describe = opts.describe;
    this.#onRecord = opts.onRecord;
  }

  /** One event from the reader (the reader's onEvent). */
  push(e: DatapathEvent): void {
    this.add(eventRecord(e, this.#describe, monotonicToDate(e.timestampNs, this.#offsetNs)));
  }

  /** One record (already converted). */
  add(r: EventRecord): void {
    this.stats.received++;
    if (r.type === 'drop') this.stats.drops++;
    else if (r.type === 'flow') this.stats.flows++;
    this.#onRecord?.(r);
    const cap = this.#history.length;
    this.#history[(this.#head + this.#size) % cap] = r;
    if (this.#size < cap) this.#size++;
    else this.#head = (this.#head + 1) % cap;
    for (const s of this.#subs) {
      if (!eventMatches(s.filter, r)) continue;
      if (s.send(r)) continue;
      this.#subs.delete(s);
      this.stats.subscribers = this.#subs.size;
      this.stats.slowSubscribers++;
      s.dropped('slow');
    }
  }

  /** The last `limit` recorded events matching `filter`, oldest first. */
  recent(filter: EventFilter = {}, limit = this.#history.length): EventRecord[] {
    const out: EventRecord[] = [];
    const cap = this.#history.length;
    for (let i = this.#size - 1; i >= 0 && out.length < limit; i--) {
      const r = this.#history[(this.#head + i) % cap]!;
      if (eventMatches(filter, r)) out.push(r);
    }
    return out.reverse();
  }

  /** Adds a live subscriber; false when the limit is reached. The returned function removes it. */
  subscribe(s: EventSubscriber): (() => void) | false {
    if (this.#subs.size >= this.#maxSubscribers) return false;
    this.#subs.add(s);
    this.stats.subscribers = this.#subs.size;
    return () => {
      this.#subs.delete(s);
      this.stats.subscribers = this.#subs.size;
    };
  }

  /** Drops every subscriber (the agent stops). */
  close(): void {
    for (const s of [...this.#subs]) {
      this.#subs.delete(s);
      s.dropped('closed');
    }
    this.stats.subscribers = 0;
  }
}
