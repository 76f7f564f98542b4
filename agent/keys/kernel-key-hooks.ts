/**
 * How the key manager hands keys to the kernel side without knowing it (WireGuard or XFRM
 * reconcilers implement this; docs/wireguard-rotation.md). The manager calls the hooks in
 * make-before-break order and acknowledges in the store only after a hook resolved:
 *
 *   local  installLocalKey   a new own generation exists: install receive state for it
 *          activateLocalKey  every peer acknowledged: start sending with it
 *          retireLocalKey    every peer moved on: remove state of the superseded generation
 *   peer   installPeerKey    a peer published a generation (pending or active): install receive state → "installed" ack
 *          usePeerKey        the peer activated it: send with it → "using" ack
 *          removePeerKey     the generation left the peer's record (retired, abandoned, peer gone)
 *          applyPeerRecord   (optional, WireGuard mode) the peer's record changed — including only
 *                            its channel state: apply it; returns the per-channel generations now
 *                            installed, which go into the ack as "channels"
 *
 * Hooks must be idempotent: after a restart the manager calls install/use again for every
 * generation it finds (the reconcilers adopt existing kernel state). A hook that throws is
 * retried on the next pass; nothing is acknowledged for it meanwhile.
 */
import type { X25519PrivateKey, X25519PublicKey } from './x25519.js';
import type { SlotRef } from './key-store-paths.js';
import type { NodeRecord } from './node-record.js';

export interface LocalKey extends SlotRef {
  generation: number;
  privateKey: X25519PrivateKey;
}

export interface PeerKey extends SlotRef {
  /** The peer node. */
  node: string;
  generation: number;
  publicKey: X25519PublicKey;
  /** The peer's verified record the key came from (addresses, pod CIDRs, boot id). */
  record: NodeRecord;
}

export interface KernelKeyHooks {
  installLocalKey(key: LocalKey): Promise<void>;
  activateLocalKey(key: LocalKey): Promise<void>;
  retireLocalKey(key: SlotRef & { generation: number }): Promise<void>;
  installPeerKey(key: PeerKey): Promise<void>;
  usePeerKey(key: PeerKey): Promise<void>;
  removePeerKey(key: SlotRef & { node: string; generation: number }): Promise<void>;
  /**
   * Called after the key hooks for every accepted record of a peer (also when only its channel
   * state changed). Returns the peer's node key generation now installed on channel 0 and 1, or
   * null when nothing is installed for it yet. Hooks without channels (IPsec) leave it out.
   */
  applyPeerRecord?(node: string, record: NodeRecord): Promise<readonly [number, number] | null>;
}

/**
 * For a key manager that runs without a datapath (the control-plane tests, `veil keys` on an
 * operator machine): every step succeeds at once because there is no kernel state to change.
 */
export const NO_KERNEL_STATE: KernelKeyHooks = {
  installLocalKey: async () => undefined,
  activateLocalKey: async () => undefined,
  retireLocalKey: async () => undefined,
  installPeerKey: async () => undefined,
  usePeerKey: async () => undefined,
  removePeerKey: async () => undefined,
};
