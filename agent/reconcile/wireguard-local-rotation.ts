/**
 * The local node's own steps of a two-channel WireGuard static key rotation
 * (docs/wireguard-rotation.md): which channel to re-key, when to steer away from it, and setting
 * the new private key on a channel only after every peer acknowledged the new public key there.
 *
 *   begin(g+1)        choose channel d, steer own traffic to d̄;     publish { d: g+1, draining d }
 *   activate(K, acks) every peer installed g+1 on d → set K on d;   publish { d: g+1, draining null }
 *   drainOther()      steer own traffic to d;                       publish { both g+1, draining d̄ }
 *   complete(K, acks) every peer installed g+1 on d̄ → set K on d̄;  publish { both g+1, draining null }
 *
 * Each method returns the channel state to publish next to the record (the caller signs and
 * publishes it, holds the rotation lease from begin to complete, drives agent/keys/rotation.ts
 * and writes the audit events). The phase is derived from the state alone, so an agent that
 * restarts mid-rotation resumes from what it published.
 */
import type { Logger } from '../log/logger.js';
import type { X25519PrivateKey } from '../keys/x25519.js';
import type { WireGuardBackend } from '../wireguard/backend.js';
import { publicKeyFingerprint } from '../keys/fingerprint.js';
import { channelDeviceNames, setChannelKey } from './wireguard-channel-devices.js';
import { chooseDrainChannel, otherChannel, validateChannelState, type WgChannel, type WireGuardChannelState } from './wireguard-channel-state.js';
import { WireGuardReconcileError } from './wireguard-errors.js';
import type { WireGuardPeerReconciler } from './wireguard-peers.js';

export type LocalRotationPhase =
  /** Both channels carry one generation; nothing drains. */
  | 'idle'
  /** Channel `channel` names the new generation and drains; peers re-key it and acknowledge. */
  | 'published'
  /** The new key is set on `channel`; the other still has the old one. */
  | 'activated'
  /** Both name the new generation; the old channel (the other one) drains. */
  | 'retiring';

/** The rotation phase a published state stands for, and the channel re-keyed first. */
export function localRotationPhase(state: WireGuardChannelState): { phase: LocalRotationPhase; channel: WgChannel | null } {
  const [g0, g1] = state.generations;
  if (state.draining === null) return g0 === g1 ? { phase: 'idle', channel: null } : { phase: 'activated', channel: g0 > g1 ? 0 : 1 };
  const d = state.draining;
  if (g0 === g1) return { phase: 'retiring', channel: otherChannel(d) };
  return state.generations[d] > state.generations[otherChannel(d)]
    ? { phase: 'published', channel: d }
    : // The drained channel carries the older generation: not a state this protocol publishes.
      { phase: 'published', channel: null };
}

/** Per peer: the node key generation of this node it has installed on channel 0 and 1. */
export type ChannelAcks = ReadonlyMap<string, readonly [number, number] | null>;

export interface LocalRotationOptions {
  backend: WireGuardBackend;
  deviceBase: string;
  /** This node's peer reconciler: steers its traffic and knows the peers that must acknowledge. */
  reconciler: WireGuardPeerReconciler;
  log?: Logger;
}

export class WireGuardLocalRotation {
  private readonly opts: LocalRotationOptions;
  /** Bytes sent to each peer (hex key) on the re-keyed channel when its key was set (activate). */
  private txAtActivation: Map<string, bigint> | undefined;

  constructor(opts: LocalRotationOptions) {
    this.opts = opts;
  }

  get state(): WireGuardChannelState {
    return this.opts.reconciler.localChannels;
  }

  /**
   * Step 1–2 (before publishing): picks the channel to re-key (the one fewer peers steer on;
   * ties: nextGeneration % 2) and moves this node's own traffic off it.
   */
  async begin(nextGeneration: number): Promise<WireGuardChannelState> {
    const { phase } = localRotationPhase(this.state);
    const [g0, g1] = this.state.generations;
    if (phase !== 'idle') this.refuse('begin', `a rotation is already in phase "${phase}"; finish it first`);
    if (!Number.isInteger(nextGeneration) || nextGeneration <= g0 || nextGeneration > 0xffffffff) this.refuse('begin', `the next generation must be above ${g0}, got ${nextGeneration}`);
    const r = this.opts.reconciler;
    const d = chooseDrainChannel(r.knownNodes().map((n) => r.steeringChannel(n)), nextGeneration);
    const generations: [number, number] = d === 0 ? [nextGeneration, g1] : [g0, nextGeneration];
    const next = validateChannelState({ generations, draining: d }, undefined);
    await r.setLocalChannels(next);
    this.opts.log?.info({ channel: d, generation: nextGeneration }, 'WireGuard key rotation: draining channel; publish the new key');
    return next;
  }

  /**
   * After an agent restart: takes up the state this node last published (the phase follows from
   * it). Moves no key: the devices were adopted with the keys they hold.
   */
  async restore(state: WireGuardChannelState): Promise<void> {
    await this.opts.reconciler.setLocalChannels(validateChannelState(state, undefined));
  }

  /**
   * Gives up a rotation that peers did not acknowledge (phase "published" only: the new key was
   * set on no device): both channels carry the old generation again; publish that.
   */
  async abort(): Promise<WireGuardChannelState> {
    const { phase, channel } = localRotationPhase(this.state);
    if (phase !== 'published' || channel === null) this.refuse('abort', `the rotation is in phase "${phase}", not "published"`);
    const old = this.state.generations[otherChannel(channel!)];
    const next = validateChannelState({ generations: [old, old], draining: null }, undefined);
    await this.opts.reconciler.setLocalChannels(next);
    this.opts.log?.warn({ channel, generation: old }, 'WireGuard key rotation abandoned: both channels carry the old key');
    return next;
  }

  /** Step 3: sets the new key on the drained channel once every peer installed it there. */
  async activate(key: X25519PrivateKey, acks: ChannelAcks): Promise<WireGuardChannelState> {
    const { phase, channel } = localRotationPhase(this.state);
    if (phase !== 'published' || channel === null) this.refuse('activate', `the rotation is in phase "${phase}", not "published"`);
    const d = channel!;
    this.requireAcks('activate', d, acks);
    await setChannelKey(this.opts.backend, this.opts.deviceBase, d, key);
    const dev = await this.opts.backend.getDevice(channelDeviceNames(this.opts.deviceBase)[d]);
    this.txAtActivation = new Map(dev.peers.map((p) => [p.publicKey.toString('hex'), p.txBytes]));
    const next = { generations: this.state.generations, draining: null };
    await this.opts.reconciler.setLocalChannels(next);
    this.opts.log?.info({ channel: d, generation: this.state.generations[d], keyFingerprint: key.fingerprint }, 'WireGuard key rotation: new key active on channel');
    return next;
  }

  /**
   * Between step 3 and 4: the peers (public key fingerprints) on the re-keyed channel's device
   * without a handshake since `sinceMs`. Peers should move onto that channel only once this node's
   * own handshake with them is done: two ends initiating on a fresh channel at once can stall it
   * for WireGuard's 5 s retry (docs/wireguard-rotation.md §Steering).
   */
  async withoutHandshake(sinceMs: number): Promise<string[]> {
    const { phase, channel } = localRotationPhase(this.state);
    if (phase !== 'activated' || channel === null) return [];
    const dev = await this.opts.backend.getDevice(channelDeviceNames(this.opts.deviceBase)[channel]);
    // A peer this node has sent nothing to since activation (not even a handshake initiation)
    // has no handshake to wait for; after a restart every peer counts.
    const sending = (p: { publicKey: Buffer; txBytes: bigint }) => this.txAtActivation?.get(p.publicKey.toString('hex')) !== p.txBytes;
    return dev.peers.filter((p) => sending(p) && (p.lastHandshakeMs === null || p.lastHandshakeMs < sinceMs)).map((p) => publicKeyFingerprint(p.publicKey));
  }

  /** Step 4 (before publishing): steers this node's traffic to the re-keyed channel and drains the other. */
  async drainOther(): Promise<WireGuardChannelState> {
    const { phase, channel } = localRotationPhase(this.state);
    if (phase !== 'activated' || channel === null) this.refuse('drainOther', `the rotation is in phase "${phase}", not "activated"`);
    const g = this.state.generations[channel!];
    const next = validateChannelState({ generations: [g, g], draining: otherChannel(channel!) }, undefined);
    await this.opts.reconciler.setLocalChannels(next);
    this.opts.log?.info({ channel: otherChannel(channel!), generation: g }, 'WireGuard key rotation: draining the old channel; publish');
    return next;
  }

  /** Step 4 end: sets the new key on the old channel once every peer installed it there. */
  async complete(key: X25519PrivateKey, acks: ChannelAcks): Promise<WireGuardChannelState> {
    const { phase, channel } = localRotationPhase(this.state);
    if (phase !== 'retiring' || channel === null) this.refuse('complete', `the rotation is in phase "${phase}", not "retiring"`);
    const old = otherChannel(channel!);
    this.requireAcks('complete', old, acks);
    await setChannelKey(this.opts.backend, this.opts.deviceBase, old, key);
    const next = { generations: this.state.generations, draining: null };
    await this.opts.reconciler.setLocalChannels(next);
    this.opts.log?.info({ channel: old, generation: this.state.generations[old], keyFingerprint: key.fingerprint }, 'WireGuard key rotation: complete; the old key may be destroyed');
    return next;
  }

  private requireAcks(step: string, d: WgChannel, acks: ChannelAcks): void {
    const g = this.state.generations[d];
    const missing = this.opts.reconciler.knownNodes().filter((n) => acks.get(n)?.[d] !== g);
    if (missing.length > 0) {
      this.refuse(step, `${missing.length} peer(s) have not installed generation ${g} on channel ${d}: ${missing.map((n) => `"${n}"`).join(', ')}; wait for their acknowledgements`);
    }
  }

  private refuse(step: string, why: string): never {
    throw new WireGuardReconcileError('VEIL_WG_ROTATION', undefined, `Cannot ${step} the WireGuard key rotation: ${why}`);
  }
}
