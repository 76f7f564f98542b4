/**
 * Decoded datapath events (struct veil_event records from the veil_events ring buffer), as a
 * callback or an async iterable. The addon consumes the ring buffer on its own thread; records
 * reach JavaScript in batches. The iterable buffers at most `maxQueued` events and counts what it
 * had to discard when the consumer is slower than the datapath.
 */
import { ValidationError } from '../errors.js';
import { callNativeSync } from '../native/addon.js';
import { quote } from '../net/ip.js';
import { checkOwnerOpen, type BpfMapHandle } from './datapath.js';
import { decodeEvent, MapsAbi, type RawEvent } from './layout.js';
import { bpfAddon, MapType } from './native.js';
import { hookName, reasonName } from './reasons.js';

export const EVENT_MAP = 'veil_events';

export interface DatapathEvent extends RawEvent {
  kind: 'drop' | 'flow' | 'unknown';
  reasonName: string;
  hookName: string;
}

export function toDatapathEvent(raw: RawEvent): DatapathEvent {
  const kind = raw.type === MapsAbi.EVENT_DROP ? 'drop' : raw.type === MapsAbi.EVENT_FLOW_NEW ? 'flow' : 'unknown';
  return { ...raw, kind, reasonName: reasonName(raw.reason), hookName: hookName(raw.hook) };
}

export interface EventReaderStats {
  delivered: number;
  /** Records shorter than struct veil_event (a program/agent ABI mismatch). */
  malformed: number;
  /** Events the iterable discarded because its queue was full. */
  discarded: number;
}

export class EventReader implements AsyncIterable<DatapathEvent> {
  private handle: unknown;
  private readonly queue: DatapathEvent[] = [];
  private waiter: ((r: IteratorResult<DatapathEvent>) => void) | undefined;
  private closed = false;
  private lostAtClose = 0;
  readonly stats: EventReaderStats = { delivered: 0, malformed: 0, discarded: 0 };

  private constructor(
    private readonly onEvent: ((e: DatapathEvent) => void) | undefined,
    private readonly maxQueued: number,
  ) {}

  /**
   * Starts reading the ring buffer `map` (a loaded object's veil_events). With `onEvent`, events
   * go to it; without, iterate the reader.
   */
  static open(map: BpfMapHandle, opts: { onEvent?: (e: DatapathEvent) => void; maxQueued?: number } = {}): EventReader {
    checkOwnerOpen(map);
    if (map.type !== MapType.RINGBUF) throw new ValidationError('map', `Invalid map ${quote(map.name)}: it is not a ring buffer (type ${map.type})`);
    const r = new EventReader(opts.onEvent, opts.maxQueued ?? 65536);
    r.handle = callNativeSync(`Cannot read events from ring buffer ${quote(map.name)}`, () => bpfAddon().bpfRingbufOpen(map.fd, (rec) => r.deliver(rec)));
    return r;
  }

  private deliver(rec: Buffer): void {
    const raw = decodeEvent(rec);
    if (!raw) {
      this.stats.malformed++;
      return;
    }
    const e = toDatapathEvent(raw);
    this.stats.delivered++;
    if (this.onEvent) return this.onEvent(e);
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      return w({ value: e, done: false });
    }
    if (this.queue.length >= this.maxQueued) {
      this.queue.shift();
      this.stats.discarded++;
    }
    this.queue.push(e);
  }

  /**
   * Records the reader thread discarded because JavaScript was behind (at most 16 batches wait;
   * native/src/bpf-ringbuf.cc). Events the programs could not even reserve in a full ring buffer
   * are not seen by anyone: the programs' counters still count those packets.
   */
  get lost(): number {
    return this.closed ? this.lostAtClose : bpfAddon().bpfRingbufLost(this.handle);
  }

  /** Stops the reader thread; pending iterations end. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lostAtClose = bpfAddon().bpfRingbufClose(this.handle).lost;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<DatapathEvent> {
    return {
      next: () => {
        const e = this.queue.shift();
        if (e) return Promise.resolve({ value: e, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.waiter = resolve));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
