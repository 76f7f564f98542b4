/**
 * Errors of the IPsec reconciler. Messages name the node and what was left in the kernel; the
 * underlying NetlinkError (with the kernel's text) is the cause. No key material, ever.
 */
import { VeilError } from '../errors.js';

/** Applying the IPsec plan of one node failed; `node` is "" for node-independent objects. */
export class IpsecReconcileError extends VeilError {
  readonly node: string;
  constructor(node: string, message: string, options?: { cause?: unknown }) {
    const code = (options?.cause as { code?: unknown } | undefined)?.code;
    super(typeof code === 'string' ? code : 'VEIL_IPSEC_RECONCILE', message, options);
    this.node = node;
  }
}
