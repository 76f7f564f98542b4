/**
 * What the key manager needs to rotate the node key over WireGuard's two channels
 * (docs/wireguard-rotation.md). Implemented by agent/reconcile/wireguard-local-rotation.ts
 * (WireGuardLocalRotation); the key manager holds the cluster-wide rotation lease, drives
 * rotation.ts, signs and publishes each returned state with the record, and audits every step.
 * Every method returns the channel state to publish next.
 *
 *   begin(g)             choose channel d, steer own traffic off it    { d: g, draining d }
 *   activate(K, acks)    every peer installed g on d → K set on d       { d: g, draining null }
 *   drainOther()         steer own traffic to d                         { both g, draining d̄ }
 *   complete(K, acks)    every peer installed g on d̄ → K set on d̄      { both g, draining null }
 *   abort()              (before activate) give up: both the old one    { both old, draining null }
 *   restore(s)           after a restart: take up the published state
 */
import type { NodeRecordWireGuard } from './node-record.js';
import type { X25519PrivateKey } from './x25519.js';

/** Per peer: this node's key generation it installed on channel 0 and 1 (its ack's "channels"), or null. */
export type ChannelAcks = ReadonlyMap<string, readonly [number, number] | null>;

export interface NodeKeyChannels {
  /** The state as last set (what the node publishes). */
  readonly state: NodeRecordWireGuard;
  restore(state: NodeRecordWireGuard): Promise<void>;
  begin(nextGeneration: number): Promise<NodeRecordWireGuard>;
  activate(key: X25519PrivateKey, acks: ChannelAcks): Promise<NodeRecordWireGuard>;
  /** Peers without a handshake on the re-keyed channel since `sinceMs` (phase "activated"); drainOther waits for none, up to a bound. */
  withoutHandshake(sinceMs: number): Promise<string[]>;
  drainOther(): Promise<NodeRecordWireGuard>;
  complete(key: X25519PrivateKey, acks: ChannelAcks): Promise<NodeRecordWireGuard>;
  abort(): Promise<NodeRecordWireGuard>;
}
