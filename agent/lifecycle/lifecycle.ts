/**
 * Ordered start, reverse stop. Every module of the agent and the operator is a hook; the
 * program's wiring (agent/cli/agent-command.ts, operator-command.ts) appends them in dependency
 * order. A start that fails stops, in reverse, the hooks that had already started, and rethrows:
 * the process never keeps running half started. stop() is idempotent and runs every stop hook
 * even when one fails (the first failure is rethrown after all ran).
 */
import { VeilError } from '../errors.js';
import type { Logger } from '../log/logger.js';

export interface Hook {
  /** Names the hook in logs and errors ("store", "datapath", "wireguard-reconciler"). */
  name: string;
  /** Starts the module; must honour `signal` (aborted when the program is asked to stop). */
  start?(signal: AbortSignal): Promise<void> | void;
  /** Stops it; called only if start() completed. */
  stop?(): Promise<void> | void;
}

export class LifecycleError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_LIFECYCLE', message, options);
  }
}

export class Lifecycle {
  readonly #hooks: Hook[] = [];
  readonly #started: Hook[] = [];
  #state: 'new' | 'starting' | 'started' | 'stopping' | 'stopped' = 'new';

  constructor(private readonly log?: Logger) {}

  append(hook: Hook): void {
    if (this.#state !== 'new') throw new LifecycleError(`Cannot add hook "${hook.name}": the lifecycle has already started`);
    if (this.#hooks.some((h) => h.name === hook.name)) throw new LifecycleError(`Hook "${hook.name}" is already registered: names must be unique`);
    this.#hooks.push(hook);
  }

  get state(): string {
    return this.#state;
  }

  /** Starts every hook in order. On failure, stops the started ones in reverse and rethrows. */
  async start(signal: AbortSignal): Promise<void> {
    if (this.#state !== 'new') throw new LifecycleError(`Cannot start: the lifecycle is "${this.#state}"`);
    this.#state = 'starting';
    for (const hook of this.#hooks) {
      if (signal.aborted) {
        await this.stop();
        throw new LifecycleError(`Start interrupted before "${hook.name}": stop was requested`, { cause: signal.reason });
      }
      const t0 = performance.now();
      try {
        await hook.start?.(signal);
      } catch (err) {
        this.log?.error({ err, hook: hook.name }, 'Start hook failed; stopping what already started');
        await this.stop();
        throw new LifecycleError(`Cannot start "${hook.name}": ${(err as Error)?.message ?? String(err)}`, { cause: err });
      }
      this.#started.push(hook);
      this.log?.debug({ hook: hook.name, ms: Math.round(performance.now() - t0) }, 'Started');
    }
    this.#state = 'started';
  }

  /** Stops the started hooks in reverse order. Safe to call more than once. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    let first: unknown;
    while (this.#started.length > 0) {
      const hook = this.#started.pop()!;
      try {
        await hook.stop?.();
        this.log?.debug({ hook: hook.name }, 'Stopped');
      } catch (err) {
        this.log?.error({ err, hook: hook.name }, 'Stop hook failed');
        first ??= err;
      }
    }
    this.#state = 'stopped';
    if (first !== undefined) throw new LifecycleError(`Stop failed: ${(first as Error)?.message ?? String(first)}`, { cause: first });
  }
}
