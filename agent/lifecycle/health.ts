/**
 * What each module of a running agent reports about itself: ok, degraded (working with a problem,
 * e.g. a job retrying), failed (not working) or starting. The health endpoint serves the
 * snapshot; readiness is "started and nothing failed".
 */
export type HealthStatus = 'starting' | 'ok' | 'degraded' | 'failed';

export interface ComponentHealth {
  name: string;
  status: HealthStatus;
  /** Why it is not ok (an error message; never key material). */
  detail?: string;
  /** Since when it has this status (ms since the epoch). */
  since: number;
}

export interface HealthSnapshot {
  status: HealthStatus;
  components: ComponentHealth[];
}

const RANK: Record<HealthStatus, number> = { ok: 0, starting: 1, degraded: 2, failed: 3 };

export class Health {
  readonly #components = new Map<string, ComponentHealth>();

  constructor(private readonly now: () => number = Date.now) {}

  set(name: string, status: HealthStatus, detail?: string): void {
    const current = this.#components.get(name);
    if (current && current.status === status && current.detail === detail) return;
    this.#components.set(name, {
      name,
      status,
      ...(detail !== undefined ? { detail } : {}),
      since: current?.status === status ? current.since : this.now(),
    });
  }

  remove(name: string): void {
    this.#components.delete(name);
  }

  get(name: string): ComponentHealth | undefined {
    return this.#components.get(name);
  }

  /** The worst status of all components ("ok" when there are none). */
  snapshot(): HealthSnapshot {
    const components = [...this.#components.values()].sort((a, b) => a.name.localeCompare(b.name));
    let status: HealthStatus = 'ok';
    for (const c of components) if (RANK[c.status] > RANK[status]) status = c.status;
    return { status, components };
  }
}
