/**
 * The key manager's kernel hooks in WireGuard mode (agent/keys/kernel-key-hooks.ts): the node key
 * becomes the private key of both channel devices (agent/reconcile/wireguard-channel-devices.ts),
 * and every peer's verified record becomes peers on both devices plus tunnel routes for its pod
 * CIDRs (agent/reconcile/wireguard-peers.ts). Identity keys are not used in WireGuard mode.
 *
 * - The devices are created (or adopted, after an agent restart: `restore()` reads the active
 *   node key from the key state directory before the key manager starts) with the first node key;
 *   then the peer reconciler adopts what they hold, so a restart changes nothing that is right.
 * - A peer key that arrives before the local devices exist is kept and applied the moment the
 *   devices are up (the peer cannot reach this node before then anyway: nothing is sent in clear,
 *   its handshakes simply fail until the devices exist).
 * - A peer whose record carries a WireGuard channel state (`wireguard`, every record this agent
 *   publishes) is installed per channel as that state says (its rotation in progress);
 *   `applyPeerRecord` applies every new record of a peer — also one that changed only its channel
 *   state — and reports the per-channel generations installed, which the key manager writes into
 *   its acknowledgement. A record without one is installed with the one node key generation the
 *   peer sends with (the active one, or the newest installed while none is active yet).
 * - The local node key: the first one is set on both channels; every later rotation runs through
 *   `rotation` (WireGuardLocalRotation, driven by the key manager under the cluster-wide rotation
 *   lease), one channel at a time (docs/wireguard-rotation.md).
 */
import type { KernelKeyHooks, LocalKey, PeerKey } from '../keys/kernel-key-hooks.js';
import { readPrivateKeyFile } from '../keys/key-file.js';
import { KeyStateDir } from '../keys/key-state-dir.js';
import type { SlotRef } from '../keys/key-store-paths.js';
import type { NodeRecord } from '../keys/node-record.js';
import { publicKeyFingerprint } from '../keys/fingerprint.js';
import type { X25519PrivateKey } from '../keys/x25519.js';
import type { Logger } from '../log/logger.js';
import { channelDeviceNames, setChannelKey, setUpChannelDevices, type ChannelDeviceSettings } from '../reconcile/wireguard-channel-devices.js';
import { WireGuardLocalRotation } from '../reconcile/wireguard-local-rotation.js';
import type { WireGuardPeerReconciler } from '../reconcile/wireguard-peers.js';
import type { WireGuardBackend } from '../wireguard/backend.js';

interface PeerState {
  record: NodeRecord;
  /** Node key generations installed, and the one the peer sends with. */
  installed: Set<number>;
  using: number | null;
}

export interface WireGuardKeyHooksOptions {
  backend: WireGuardBackend;
  devices: ChannelDeviceSettings;
  reconciler: WireGuardPeerReconciler;
  log: Logger;
  /** The devices are up (their ifindexes, channel 0 and 1). */
  onDevicesUp(ifindexes: [number, number]): void | Promise<void>;
  /** The peers changed (for the datapath's ipcache and metrics). */
  onPeersChanged(): void;
}

export class WireGuardKeyHooks implements KernelKeyHooks {
  readonly #o: WireGuardKeyHooksOptions;
  readonly #peers = new Map<string, PeerState>();
  #up = false;
  /** Whether a node key was activated (later ones rotate through `rotation`). */
  #activated = false;
  /** The local node key's two-channel rotation steps (the key manager's `wireguard.channels`). */
  readonly rotation: WireGuardLocalRotation;

  constructor(opts: WireGuardKeyHooksOptions) {
    this.#o = opts;
    this.rotation = new WireGuardLocalRotation({ backend: opts.backend, deviceBase: opts.devices.base, reconciler: opts.reconciler, log: opts.log });
  }

  get devicesUp(): boolean {
    return this.#up;
  }

  /**
   * After a restart: brings the devices up with the node keys of the key state directory
   * (adopting running devices). A running device that holds a live generation keeps it — mid
   * rotation the two channels hold different ones —, any other gets the active key. False when
   * there is no active node key yet (first start).
   */
  async restore(stateDir: string): Promise<boolean> {
    const dir = new KeyStateDir(stateDir);
    const state = await dir.load();
    const slot = state?.slots.find((s) => s.rotation.slot.kind === 'node');
    const active = slot?.rotation.generations.find((g) => g.phase === 'active');
    if (!slot || !active) return false;
    const ref: SlotRef = { kind: 'node', identity: 0 };
    const live = new Map<string, X25519PrivateKey>();
    for (const g of slot.rotation.generations) {
      if (g.phase === 'retired') continue;
      const key = await readPrivateKeyFile(dir.keyPath(ref, g.generation)).catch(() => undefined);
      if (key) live.set(g.fingerprint, key);
    }
    const activeKey = live.get(active.fingerprint) ?? (await readPrivateKeyFile(dir.keyPath(ref, active.generation)));
    const keys = [activeKey, activeKey] as [X25519PrivateKey, X25519PrivateKey];
    const names = channelDeviceNames(this.#o.devices.base);
    for (const d of [0, 1] as const) {
      const dev = await this.#o.backend.getDevice(names[d]).catch(() => null);
      const held = dev?.hasPrivateKey && dev.publicKey ? live.get(publicKeyFingerprint(dev.publicKey)) : undefined;
      if (held) keys[d] = held;
    }
    this.#activated = true;
    await this.#bringUp(keys);
    return true;
  }

  async #bringUp(keys: [X25519PrivateKey, X25519PrivateKey]): Promise<void> {
    const reports = await setUpChannelDevices(this.#o.backend, this.#o.devices, keys, this.#o.log);
    await this.#o.reconciler.adopt();
    this.#up = true;
    await this.#o.onDevicesUp([reports[0].ifindex, reports[1].ifindex]);
    for (const node of this.#peers.keys()) await this.#apply(node);
  }

  /** The first node key (none active yet) goes on both channels; later ones through `rotation`. */
  async installLocalKey(key: LocalKey): Promise<void> {
    if (key.kind !== 'node' || this.#activated) return;
    if (!this.#up) return this.#bringUp([key.privateKey, key.privateKey]);
    // An earlier first key was abandoned before activation: replace it.
    for (const d of [0, 1] as const) await setChannelKey(this.#o.backend, this.#o.devices.base, d, key.privateKey);
  }

  async activateLocalKey(key: LocalKey): Promise<void> {
    if (key.kind !== 'node') return;
    if (!this.#up) await this.#bringUp([key.privateKey, key.privateKey]);
    this.#activated = true;
  }

  async retireLocalKey(): Promise<void> {
    // The rotation's complete() step set the new key on the old channel: no device holds the old one.
  }

  async applyPeerRecord(node: string, record: NodeRecord): Promise<readonly [number, number] | null> {
    const p = this.#peers.get(node);
    if (!p) return null;
    p.record = record;
    await this.#apply(node);
    return this.#up ? this.#o.reconciler.installedGenerations(node) : null;
  }

  async installPeerKey(key: PeerKey): Promise<void> {
    if (key.kind !== 'node') return;
    const p = this.#peers.get(key.node) ?? { record: key.record, installed: new Set<number>(), using: null };
    p.record = key.record;
    p.installed.add(key.generation);
    this.#peers.set(key.node, p);
    await this.#apply(key.node);
  }

  async usePeerKey(key: PeerKey): Promise<void> {
    if (key.kind !== 'node') return;
    const p = this.#peers.get(key.node);
    if (!p) return this.installPeerKey(key).then(() => this.usePeerKey(key));
    p.record = key.record;
    p.using = key.generation;
    await this.#apply(key.node);
  }

  async removePeerKey(key: SlotRef & { node: string; generation: number }): Promise<void> {
    if (key.kind !== 'node') return;
    const p = this.#peers.get(key.node);
    if (!p) return;
    p.installed.delete(key.generation);
    if (p.using === key.generation) p.using = null;
    if (p.installed.size === 0) {
      this.#peers.delete(key.node);
      if (this.#up) await this.#o.reconciler.delete(key.node);
      this.#o.onPeersChanged();
      return;
    }
    await this.#apply(key.node);
  }

  /** Installs the peer with the one generation it sends with. */
  async #apply(node: string): Promise<void> {
    const p = this.#peers.get(node);
    if (!p || !this.#up) return;
    if (p.record.wireguard) {
      await this.#o.reconciler.update(node, { record: p.record, channels: p.record.wireguard });
      this.#o.onPeersChanged();
      return;
    }
    const generation = p.using ?? Math.max(...p.installed);
    const nodeKey = p.record.keys.find((k) => k.kind === 'node' && k.generation === generation);
    if (!nodeKey) return;
    const record: NodeRecord = { ...p.record, keys: [nodeKey] };
    await this.#o.reconciler.update(node, { record });
    this.#o.onPeersChanged();
  }
}
