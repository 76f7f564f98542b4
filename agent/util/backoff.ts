/**
 * Bounded exponential backoff with jitter for reconnect and retry loops (store watch streams, lease
 * keep-alives): 100 ms doubling up to a cap (2 s by default), ±20 % jitter so that many agents
 * reconnecting to a restarted etcd do not arrive in step. `reset()` after a success.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs = 100,
    private readonly maxMs = 2_000,
  ) {}

  /** The delay before the next attempt. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  reset(): void {
    this.attempt = 0;
  }
}
