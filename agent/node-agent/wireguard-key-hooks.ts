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
 * - Each peer is installed with the one node key generation it sends with (the active one, or the
 *   newest installed while none is active yet).
 *
 * Limitation (docs/agent.md): a later rotation of the local node key sets the new key on both
 * channels at activation; the two-channel make-before-break sequence of
 * docs/wireguard-rotation.md (WireGuardLocalRotation) is not driven by the agent yet.
 */
import type { KernelKeyHooks, LocalKey, PeerKey } from '../keys/kernel-key-hooks.js';
import { readPrivateKeyFile } from '../keys/key-file.js';
import { KeyStateDir } from '../keys/key-state-dir.js';
import type { SlotRef } from '../keys/key-store-paths.js';
import type { NodeRecord } from '../keys/node-record.js';
import type { X25519PrivateKey } from '../keys/x25519.js';
import type { Logger } from '../log/logger.js';
import { setChannelKey, setUpChannelDevices, type ChannelDeviceSettings } from '../reconcile/wireguard-channel-devices.js';
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

  constructor(opts: WireGuardKeyHooksOptions) {
    this.#o = opts;
  }

  get devicesUp(): boolean {
    return this.#up;
  }

  /**
   * After a restart: brings the devices up with the active node key of the key state directory
   * (adopting running devices). False when there is no active node key yet (first start).
   */
  async restore(stateDir: string): Promise<boolean> {
    const dir = new KeyStateDir(stateDir);
    const state = await dir.load();
    const slot = state?.slots.find((s) => s.rotation.slot.kind === 'node');
    const active = slot?.rotation.generations.find((g) => g.phase === 'active');
    if (!slot || !active) return false;
    const ref: SlotRef = { kind: 'node', identity: 0 };
    const key = await readPrivateKeyFile(dir.keyPath(ref, active.generation));
    await this.#bringUp(key);
    return true;
  }

  async #bringUp(key: X25519PrivateKey): Promise<void> {
    const reports = await setUpChannelDevices(this.#o.backend, this.#o.devices, [key, key], this.#o.log);
    await this.#o.reconciler.adopt();
    this.#up = true;
    await this.#o.onDevicesUp([reports[0].ifindex, reports[1].ifindex]);
    for (const node of this.#peers.keys()) await this.#apply(node);
  }

  async installLocalKey(key: LocalKey): Promise<void> {
    if (key.kind !== 'node' || this.#up) return;
    await this.#bringUp(key.privateKey);
  }

  async activateLocalKey(key: LocalKey): Promise<void> {
    if (key.kind !== 'node') return;
    if (!this.#up) return this.#bringUp(key.privateKey);
    for (const d of [0, 1] as const) await setChannelKey(this.#o.backend, this.#o.devices.base, d, key.privateKey);
  }

  async retireLocalKey(): Promise<void> {
    // Both channels already carry the active key (see the limitation above): nothing holds the old one.
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
    const generation = p.using ?? Math.max(...p.installed);
    const nodeKey = p.record.keys.find((k) => k.kind === 'node' && k.generation === generation);
    if (!nodeKey) return;
    const record: NodeRecord = { ...p.record, keys: [nodeKey] };
    await this.#o.reconciler.update(node, { record });
    this.#o.onPeersChanged();
  }
}
