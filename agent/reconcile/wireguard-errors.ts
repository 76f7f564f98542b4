/**
 * Errors of the WireGuard peer reconciler (agent/reconcile/wireguard-*.ts). One class, one
 * stable code per failure kind; messages name the node and the fix and never carry key material
 * (public keys appear only as publicKeyFingerprint() values).
 */
import { VeilError } from '../errors.js';

export type WireGuardReconcileCode =
  /** A node record (or its channel state) cannot be turned into peers: nothing was changed. */
  | 'VEIL_WG_BAD_RECORD'
  /** A node's pod CIDRs or key collide with another node's or the local node's: nothing was changed. */
  | 'VEIL_WG_CONFLICT'
  /** A local rotation step was asked for out of order or before every peer acknowledged. */
  | 'VEIL_WG_ROTATION'
  /** The reconciler was used before adopt(). */
  | 'VEIL_WG_NOT_ADOPTED';

export class WireGuardReconcileError extends VeilError {
  /** The node the error is about, when there is one. */
  readonly node: string | undefined;

  constructor(code: WireGuardReconcileCode, node: string | undefined, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.node = node;
  }
}
