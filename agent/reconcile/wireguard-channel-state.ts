/**
 * The two-channel state of WireGuard static key rotation (docs/wireguard-rotation.md), as the
 * reconciler reads it from a node record and as the local node keeps its own: which node key
 * generation each channel carries and which channel, if any, is being re-keyed ("draining").
 * Pure functions, no I/O.
 *
 * Published by every node next to its record (field names as below; see the Implementation
 * section of docs/wireguard-rotation.md):
 *   wireguard: { generations: [g0, g1], draining: 0 | 1 | null }
 * `generations[d]` is the generation whose public key peers install for the node on channel d:
 * during a rotation the draining channel already names the new generation, which the node sets
 * on its own device only after every peer acknowledged it.
 */
import { quote } from '../net/ip.js';
import { WireGuardReconcileError } from './wireguard-errors.js';

export type WgChannel = 0 | 1;
export const WG_CHANNELS: readonly WgChannel[] = [0, 1];

export interface WireGuardChannelState {
  /** Node key generation carried by channel 0 and channel 1. */
  readonly generations: readonly [number, number];
  /** The channel being re-keyed (nobody steers to it), or null in steady state. */
  readonly draining: WgChannel | null;
}

/** Steady state: both channels carry `generation`, none drains. */
export function steadyChannelState(generation: number): WireGuardChannelState {
  return { generations: [generation, generation], draining: null };
}

export function otherChannel(d: WgChannel): WgChannel {
  return d === 0 ? 1 : 0;
}

/** Checks the shape of a published channel state; throws VEIL_WG_BAD_RECORD naming the node and the fix. */
export function validateChannelState(raw: unknown, node: string | undefined): WireGuardChannelState {
  const bad = (fix: string): never => {
    throw new WireGuardReconcileError('VEIL_WG_BAD_RECORD', node, `Invalid WireGuard channel state${node ? ` of node "${node}"` : ''}: ${fix}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('expected an object { generations: [g0, g1], draining }');
  const s = raw as Record<string, unknown>;
  const g = s.generations;
  if (!Array.isArray(g) || g.length !== 2) return bad(`"generations" is ${quote(g)}; use two generations, one per channel`);
  for (const x of g) {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 0xffffffff) bad(`generation ${quote(x)} is not an integer from 1 to 4294967295`);
  }
  // Generations may be further apart than one: a generation abandoned before activation is never reused.
  const [g0, g1] = g as [number, number];
  const d = s.draining;
  if (d !== null && d !== 0 && d !== 1) bad(`"draining" is ${quote(d)}; use 0, 1 or null`);
  return { generations: [g0, g1], draining: d as WgChannel | null };
}

/**
 * The channel to send to a remote node on, given this node's state, the remote's and the channel
 * used now (null before the first choice):
 *  1. never a channel either side drains (null when that leaves none: both sides drain opposite
 *     channels, which the cluster-wide rotation lease prevents);
 *  2. while this node's own channels differ (it activated a new key on one), its newer one: the
 *     rotating node moves first, so it initiates the WireGuard handshakes on the re-keyed channel
 *     and its peers only answer them;
 *  3. otherwise stay on the current channel (peers move only when the rotating node drains the
 *     old one, by then on sessions the rotating node already established; a completed rotation
 *     moves nobody);
 *  4. the first choice: the remote's newer channel, else channel 0.
 * Moving as little as possible matters: two nodes that start sending on a channel without a
 * session at the same moment both initiate a handshake, and crossing initiations can stall the
 * channel for WireGuard's 5 s retry.
 */
export function steeringChannel(local: WireGuardChannelState, remote: WireGuardChannelState, current: WgChannel | null = null): WgChannel | null {
  const usable = WG_CHANNELS.filter((c) => c !== local.draining && c !== remote.draining);
  if (usable.length === 0) return null;
  if (usable.length === 1) return usable[0]!;
  const [l0, l1] = local.generations;
  if (l0 !== l1) return l0 > l1 ? 0 : 1;
  if (current !== null) return current;
  const [r0, r1] = remote.generations;
  if (r0 !== r1) return r0 > r1 ? 0 : 1;
  return 0;
}

/**
 * The channel a node re-keys first when it rotates to `nextGeneration`: the one fewer peers steer
 * on (`peerSteering`: each peer's current channel toward this node); ties: nextGeneration % 2.
 */
export function chooseDrainChannel(peerSteering: readonly (WgChannel | null)[], nextGeneration: number): WgChannel {
  const on = [0, 0];
  for (const c of peerSteering) if (c !== null) on[c]! += 1;
  if (on[0] !== on[1]) return on[0]! < on[1]! ? 0 : 1;
  return (nextGeneration % 2) as WgChannel;
}
