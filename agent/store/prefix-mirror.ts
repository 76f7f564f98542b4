/**
 * A local copy of every key under one prefix: listed once, then kept current by a watch that
 * resumes from the list's revision (nothing lost between list and watch). When the watch cannot
 * continue (the revision was compacted away, or the store failed for good) the mirror lists and
 * watches again after a delay, and reports keys that vanished meanwhile as deletions. Consumers
 * get `onChange(key, kv | null)` in store order and read the map.
 */
import type { KeyValue, Store, Watch } from './store.js';

export interface PrefixMirrorOptions {
  store: Store;
  prefix: string;
  /** Called for every change, in order; kv is null for a deletion. */
  onChange(key: string, kv: KeyValue | null): void;
  /** A watch failed and the mirror will resynchronise (for logging and health). */
  onResync?(err: Error): void;
  /** Delay before resynchronising after a failure (default 1000 ms). */
  retryMs?: number;
}

export class PrefixMirror {
  readonly items = new Map<string, KeyValue>();
  #watch: Watch | undefined;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #generation = 0;

  constructor(private readonly opts: PrefixMirrorOptions) {}

  /** Lists and starts watching; resolves when the first list has been applied. */
  async start(): Promise<void> {
    await this.#sync();
  }

  async #sync(): Promise<void> {
    const gen = ++this.#generation;
    const list = await this.opts.store.list(this.opts.prefix);
    if (this.#stopped || gen !== this.#generation) return;
    const seen = new Set<string>();
    for (const kv of list.items) {
      seen.add(kv.key);
      if (this.items.get(kv.key)?.modRevision !== kv.modRevision) {
        this.items.set(kv.key, kv);
        this.opts.onChange(kv.key, kv);
      }
    }
    for (const key of [...this.items.keys()]) {
      if (!seen.has(key)) {
        this.items.delete(key);
        this.opts.onChange(key, null);
      }
    }
    this.#watch = await this.opts.store.watch(
      this.opts.prefix,
      {
        onEvent: (e) => {
          if (this.#stopped || gen !== this.#generation) return;
          if (e.type === 'put') {
            this.items.set(e.kv.key, e.kv);
            this.opts.onChange(e.kv.key, e.kv);
          } else if (this.items.delete(e.key)) {
            this.opts.onChange(e.key, null);
          }
        },
        onError: (err) => {
          if (this.#stopped || gen !== this.#generation) return;
          this.opts.onResync?.(err);
          this.#scheduleResync();
        },
      },
      { afterRevision: list.revision },
    );
    if (this.#stopped) await this.#watch.close();
  }

  #scheduleResync(): void {
    const old = this.#watch;
    this.#watch = undefined;
    void old?.close().catch(() => undefined);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#sync().catch((err: unknown) => {
        if (this.#stopped) return;
        this.opts.onResync?.(err as Error);
        this.#scheduleResync();
      });
    }, this.opts.retryMs ?? 1000);
    this.#timer.unref?.();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#watch?.close();
  }
}
