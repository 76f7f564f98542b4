/**
 * Named background jobs with bounded retry and backoff that report health instead of crashing the
 * process (STYLE.md): a failing job is "degraded" while it retries and "ok" again after a success.
 * - oneShot: run until it succeeds once (e.g. an initial sync); `maxAttempts` turns it "failed".
 * - timer: run every interval (±10 % jitter so a fleet does not act in step); a failure retries
 *   with backoff before the next regular run.
 * - observer: a long-running loop (e.g. a watch) restarted with backoff if it throws or returns
 *   before stop.
 * stop() aborts every job's signal and waits for all of them.
 */
import { Backoff } from '../util/backoff.js';
import type { Logger } from '../log/logger.js';
import type { Health } from './health.js';
import { abortableSleep } from '../util/abortable-sleep.js';

const OBSERVER_HEALTHY_AFTER_MS = 5_000;

export type JobFn = (signal: AbortSignal) => Promise<void>;

export interface RetryOptions {
  /** First retry delay (default 200 ms). */
  initialDelayMs?: number;
  /** Cap of the doubling delay (default 30 s). */
  maxDelayMs?: number;
  /** oneShot only: give up after this many attempts and report "failed" (default: never). */
  maxAttempts?: number;
}

function message(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

export class Jobs {
  readonly #controller = new AbortController();
  readonly #running = new Set<Promise<void>>();

  constructor(
    private readonly health: Health,
    private readonly log?: Logger,
  ) {}

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  #track(name: string, body: () => Promise<void>): Promise<void> {
    const p = body()
      .catch((err) => {
        // A job body never throws past its own retry loop; this is a bug guard.
        this.health.set(`job:${name}`, 'failed', message(err));
        this.log?.error({ err, job: name }, 'Job crashed');
      })
      .finally(() => this.#running.delete(p));
    this.#running.add(p);
    return p;
  }

  /** Runs `fn` until it succeeds once. Resolves when it succeeded, gave up or was stopped. */
  oneShot(name: string, fn: JobFn, retry: RetryOptions = {}): Promise<void> {
    const signal = this.#controller.signal;
    const key = `job:${name}`;
    this.health.set(key, 'starting');
    return this.#track(name, async () => {
      const backoff = new Backoff(retry.initialDelayMs ?? 200, retry.maxDelayMs ?? 30_000);
      for (let attempt = 1; !signal.aborted; attempt++) {
        try {
          await fn(signal);
          this.health.set(key, 'ok');
          return;
        } catch (err) {
          if (signal.aborted) return;
          if (retry.maxAttempts !== undefined && attempt >= retry.maxAttempts) {
            this.health.set(key, 'failed', message(err));
            this.log?.error({ err, job: name, attempt }, 'Job failed; giving up');
            return;
          }
          this.health.set(key, 'degraded', message(err));
          this.log?.warn({ err, job: name, attempt }, 'Job failed; retrying');
          await abortableSleep(backoff.next(), signal);
        }
      }
    });
  }

  /** Runs `fn` now and then every `intervalMs` until stop(). */
  timer(name: string, intervalMs: number, fn: JobFn, retry: RetryOptions = {}): void {
    const signal = this.#controller.signal;
    const key = `job:${name}`;
    this.health.set(key, 'starting');
    void this.#track(name, async () => {
      const backoff = new Backoff(retry.initialDelayMs ?? 200, Math.min(retry.maxDelayMs ?? 30_000, intervalMs));
      while (!signal.aborted) {
        let delay: number;
        try {
          await fn(signal);
          this.health.set(key, 'ok');
          backoff.reset();
          delay = Math.round(intervalMs * (0.9 + Math.random() * 0.2));
        } catch (err) {
          if (signal.aborted) return;
          this.health.set(key, 'degraded', message(err));
          this.log?.warn({ err, job: name }, 'Job failed; retrying');
          delay = backoff.next();
        }
        await abortableSleep(delay, signal);
      }
    });
  }

  /** Runs a long-lived loop, restarting it with backoff when it throws or ends early. */
  observer(name: string, fn: JobFn, retry: RetryOptions = {}): void {
    const signal = this.#controller.signal;
    const key = `job:${name}`;
    this.health.set(key, 'ok');
    void this.#track(name, async () => {
      const backoff = new Backoff(retry.initialDelayMs ?? 200, retry.maxDelayMs ?? 30_000);
      while (!signal.aborted) {
        const t0 = Date.now();
        // Healthy again once a restarted loop has kept running for a while.
        const healthy = setTimeout(() => this.health.set(key, 'ok'), OBSERVER_HEALTHY_AFTER_MS);
        try {
          await fn(signal);
          if (signal.aborted) return clearTimeout(healthy);
          this.health.set(key, 'degraded', 'The loop ended before stop; restarting');
        } catch (err) {
          if (signal.aborted) return clearTimeout(healthy);
          this.health.set(key, 'degraded', message(err));
          this.log?.warn({ err, job: name }, 'Observer failed; restarting');
        }
        clearTimeout(healthy);
        if (Date.now() - t0 > 60_000) backoff.reset();
        await abortableSleep(backoff.next(), signal);
      }
    });
  }

  /** Aborts every job and waits until all have returned. */
  async stop(): Promise<void> {
    this.#controller.abort(new Error('Jobs stopped'));
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
