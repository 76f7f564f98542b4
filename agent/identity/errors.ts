/**
 * The identity allocator's failure kinds, each with a stable `code`. Bad arguments (an invalid
 * or oversized label set, an id out of range) are ValidationError from agent/errors.ts.
 */
import { VeilError } from '../errors.js';

export const IDENTITY_EXHAUSTED = 'VEIL_IDENTITY_EXHAUSTED';
export const IDENTITY_CONFLICT = 'VEIL_IDENTITY_CONFLICT';
export const IDENTITY_CORRUPT = 'VEIL_IDENTITY_CORRUPT';
export const IDENTITY_RELEASED = 'VEIL_IDENTITY_RELEASED';

/** Every cluster id in the allocator's range is taken (or still referenced). */
export class IdentityExhaustedError extends VeilError {
  readonly minId: number;
  readonly maxId: number;
  constructor(minId: number, maxId: number, message: string) {
    super(IDENTITY_EXHAUSTED, message);
    this.minId = minId;
    this.maxId = maxId;
  }
}

/** Allocation did not converge within the bounded number of compare-and-swap attempts. */
export class IdentityConflictError extends VeilError {
  readonly attempts: number;
  constructor(attempts: number, message: string, options?: { cause?: unknown }) {
    super(IDENTITY_CONFLICT, message, options);
    this.attempts = attempts;
  }
}

/** A value read from the store is not a valid identity record (hostile or damaged). */
export class IdentityCorruptError extends VeilError {
  /** The store key whose value was rejected. */
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super(IDENTITY_CORRUPT, message, options);
    this.key = key;
  }
}

/** The identity was released (or is being released) and cannot be referenced any more. */
export class IdentityReleasedError extends VeilError {
  readonly id: number;
  constructor(id: number, message: string) {
    super(IDENTITY_RELEASED, message);
    this.id = id;
  }
}
