/**
 * Start-up against a store that is not reachable yet (etcd still starting, a slow machine, the
 * first gRPC connection taking longer than one request deadline): repeats a store call while it
 * fails with StoreUnavailableError, with bounded backoff, until it answers, `timeoutMs` has
 * passed or `signal` aborts. Any other error is thrown at once; after the deadline the last
 * unavailability is thrown. Used by the agent's and the operator's "store" start hooks, so a
 * process that starts next to its etcd does not exit on the first slow connection.
 */
import { abortableSleep } from '../util/abortable-sleep.js';
import { Backoff } from '../util/backoff.js';
import { StoreUnavailableError } from './errors.js';

export interface UntilStoreAnswersOptions {
  /** How long to keep retrying an unreachable store. */
  timeoutMs: number;
  signal: AbortSignal;
  /** Called before each wait (for a log line). */
  onRetry?: (err: StoreUnavailableError, delayMs: number) => void;
}

export async function untilStoreAnswers<T>(call: () => Promise<T>, opts: UntilStoreAnswersOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const backoff = new Backoff(200, 2_000);
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof StoreUnavailableError) || opts.signal.aborted) throw err;
      const delay = Math.min(backoff.next(), deadline - Date.now());
      if (delay <= 0) throw err;
      opts.onRetry?.(err, delay);
      await abortableSleep(delay, opts.signal);
      if (opts.signal.aborted) throw err;
    }
  }
}
