/**
 * Failure kinds of the cluster model. Bad arguments are ValidationError (agent/errors.ts).
 */
import { VeilError } from '../errors.js';

export const CLUSTER_CORRUPT = 'VEIL_CLUSTER_CORRUPT';

/** A value read from the store under the cluster prefix is not a valid record (hostile or damaged). */
export class ClusterRecordError extends VeilError {
  /** The store key whose value was rejected. */
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super(CLUSTER_CORRUPT, message, options);
    this.key = key;
  }
}
