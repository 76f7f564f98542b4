import { StoreLeaseLostError } from './errors.js';

/**
 * The part of a lease's life both stores share: alive until revoked or lost, and the onLost
 * handlers that run once on loss (a handler added after the loss still hears of it).
 */
export class LeaseLifecycle {
  private state: 'alive' | 'lost' | 'revoked' = 'alive';
  private readonly lostHandlers: Array<(err: Error) => void> = [];
  private lostError: Error | undefined;

  constructor(private readonly id: string) {}

  /** True while the lease is refreshed (not lost, not revoked). */
  get alive(): boolean {
    return this.state === 'alive';
  }

  onLost(fn: (err: Error) => void): void {
    if (this.lostError) {
      const err = this.lostError;
      queueMicrotask(() => fn(err));
    } else if (this.state === 'alive') {
      this.lostHandlers.push(fn);
    }
  }

  /** alive → revoked; false (nothing to do) when the lease was already revoked or lost. */
  revoke(): boolean {
    if (this.state !== 'alive') return false;
    this.state = 'revoked';
    return true;
  }

  /** alive → lost; the error to report, or undefined when the lease was already revoked or lost. */
  lose(message: string): StoreLeaseLostError | undefined {
    if (this.state !== 'alive') return undefined;
    this.state = 'lost';
    const err = new StoreLeaseLostError(this.id, message);
    this.lostError = err;
    return err;
  }

  /** Runs the onLost handlers once; a failing handler does not stop the others. */
  notifyLost(err: Error): void {
    for (const fn of this.lostHandlers.splice(0)) {
      try {
        fn(err);
      } catch {
        // A failing handler must not stop the others.
      }
    }
  }
}
