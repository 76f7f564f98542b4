/**
 * The agent's Prometheus metrics, on a registry of its own (never prom-client's global one, so
 * two agents in one test process do not mix). Names follow Prometheus conventions: `veil_` prefix,
 * base units, `_total` for counters. Cardinality is bounded: labels are kinds, modes, hooks and
 * reasons — never pod names, identities or addresses.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface AgentMetrics {
  registry: Registry;
  /** Tunnel peers installed in the kernel (WireGuard peers or remote nodes with SAs). */
  peers: Gauge<'mode'>;
  /** XFRM states installed (IPsec mode). */
  xfrmStates: Gauge<'direction'>;
  xfrmSpiCollisions: Gauge;
  /** Current generation of each key kind this node holds. */
  keyGeneration: Gauge<'key'>;
  /** Completed or failed rotations. */
  rotations: Counter<'key' | 'result'>;
  /** Datapath outcomes read from the eBPF counters at scrape time. */
  datapathPackets: Gauge<'hook' | 'reason'>;
  /** Datapath events read from the ring buffer, by type (drop, flow) and reason. */
  datapathEvents: Counter<'type' | 'reason'>;
  /** Events the agent could not take in (its reader fell behind), and event streams it cut (clients too slow). */
  datapathEventsLost: Counter;
  eventStreamsDropped: Counter;
  /** How long one reconciler pass took. */
  reconcileSeconds: Histogram<'reconciler'>;
  reconcileErrors: Counter<'reconciler'>;
}

export function createAgentMetrics(opts: { defaultMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'veil_' });
  const registers = [registry];
  return {
    registry,
    peers: new Gauge({ name: 'veil_peers', help: 'Tunnel peers installed in the kernel', labelNames: ['mode'], registers }),
    xfrmStates: new Gauge({ name: 'veil_xfrm_states', help: 'IPsec SAs (XFRM states) installed in the kernel, by direction', labelNames: ['direction'], registers }),
    xfrmSpiCollisions: new Gauge({ name: 'veil_xfrm_spi_collisions', help: 'Inbound IPsec SAs whose SPI candidate collided on this node (the sender cannot reach them yet)', registers }),
    keyGeneration: new Gauge({ name: 'veil_key_generation', help: 'Current generation of the keys this node holds', labelNames: ['key'], registers }),
    rotations: new Counter({ name: 'veil_key_rotations_total', help: 'Key rotations by key kind and result', labelNames: ['key', 'result'], registers }),
    datapathPackets: new Gauge({
      name: 'veil_datapath_packets',
      help: 'Packets the eBPF programs forwarded or dropped, by hook and reason (counters read at scrape time)',
      labelNames: ['hook', 'reason'],
      registers,
    }),
    datapathEvents: new Counter({ name: 'veil_datapath_events_total', help: 'Datapath events read from the ring buffer, by type and reason', labelNames: ['type', 'reason'], registers }),
    datapathEventsLost: new Counter({ name: 'veil_datapath_events_lost_total', help: 'Datapath events the agent discarded because its reader fell behind (the eBPF counters still count the packets)', registers }),
    eventStreamsDropped: new Counter({ name: 'veil_event_streams_dropped_total', help: 'GET /events followers disconnected because they read too slowly', registers }),
    reconcileSeconds: new Histogram({
      name: 'veil_reconcile_duration_seconds',
      help: 'Duration of one reconciler pass',
      labelNames: ['reconciler'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    reconcileErrors: new Counter({ name: 'veil_reconcile_errors_total', help: 'Reconciler passes that failed', labelNames: ['reconciler'], registers }),
  };
}
