/**
 * The operator's Prometheus metrics, on a registry of its own (as the agent's, metrics.ts).
 * Labels are results only: never pod names or identities.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface OperatorMetrics {
  registry: Registry;
  /** 1 while this replica is the active operator. */
  leader: Gauge;
  /** Distinct pod label sets with an identity after the last sync pass. */
  identities: Gauge;
  /** Label sets allocated for the first time. */
  allocations: Counter;
  /** Pods the last pass could not give an identity. */
  allocationFailures: Gauge;
  /** Identities released by the garbage collector, and those waiting for their grace period. */
  released: Counter;
  releasePending: Gauge;
  syncSeconds: Histogram;
}

export function createOperatorMetrics(opts: { defaultMetrics?: boolean } = {}): OperatorMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'veil_operator_' });
  const registers = [registry];
  return {
    registry,
    leader: new Gauge({ name: 'veil_operator_leader', help: '1 while this replica is the active operator', registers }),
    identities: new Gauge({ name: 'veil_operator_identities', help: 'Distinct pod label sets with an identity after the last sync', registers }),
    allocations: new Counter({ name: 'veil_operator_identity_allocations_total', help: 'Label sets given an identity for the first time', registers }),
    allocationFailures: new Gauge({ name: 'veil_operator_identity_allocation_failures', help: 'Pods the last sync could not give an identity', registers }),
    released: new Counter({ name: 'veil_operator_identities_released_total', help: 'Identities released after their grace period', registers }),
    releasePending: new Gauge({ name: 'veil_operator_identities_release_pending', help: 'Unreferenced identities waiting for their grace period', registers }),
    syncSeconds: new Histogram({
      name: 'veil_operator_identity_sync_duration_seconds',
      help: 'Duration of one identity sync pass',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
  };
}
