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
  /** Node certificates signed, by proof ("bootstrap-token" = first, "node-certificate" = renewal). */
  nodeCertificatesIssued: Counter<'proof'>;
  /** Node certificate requests refused, by reason (agent/node-cert/errors.ts RefusalReason). */
  nodeCertificateRequestsRefused: Counter<'reason'>;
  /** Certificate records removed by the garbage collector. */
  certificateRecordsRemoved: Counter;
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
    nodeCertificatesIssued: new Counter({ name: 'veil_operator_node_certificates_issued_total', help: 'Node certificates signed, by proof kind', labelNames: ['proof'], registers }),
    nodeCertificateRequestsRefused: new Counter({
      name: 'veil_operator_node_certificate_requests_refused_total',
      help: 'Node certificate requests refused, by reason',
      labelNames: ['reason'],
      registers,
    }),
    certificateRecordsRemoved: new Counter({ name: 'veil_operator_certificate_records_removed_total', help: 'Certificate records of removed nodes garbage collected', registers }),
  };
}
