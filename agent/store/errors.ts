/**
 * The store's failure kinds. Every error a Store method rejects with (apart from
 * ValidationError for bad arguments) is one of these, with a stable `code`.
 */
import { VeilError } from '../errors.js';

/** The revision a watch had to resume from was compacted away: re-list, then watch again. */
export const STORE_COMPACTED = 'VEIL_STORE_COMPACTED';
/** The store could not be reached within the request timeout (or the connection broke). */
export const STORE_UNAVAILABLE = 'VEIL_STORE_UNAVAILABLE';
/** A lease expired, could not be refreshed in time, or was revoked. */
export const STORE_LEASE_LOST = 'VEIL_STORE_LEASE_LOST';
/** The Store object was closed; nothing more can be done with it. */
export const STORE_CLOSED = 'VEIL_STORE_CLOSED';
/** The store answered but refused the request (permission, size, an unexpected reply). */
export const STORE_REQUEST = 'VEIL_STORE_REQUEST';
/** A watch's onEvent handler threw; the watch stopped so that no event is silently skipped. */
export const STORE_WATCH_HANDLER = 'VEIL_STORE_WATCH_HANDLER';

export class StoreUnavailableError extends VeilError {
  /** The endpoints that were tried, e.g. ["http://127.0.0.1:2379"]. */
  readonly endpoints: string[];
  constructor(endpoints: string[], message: string, options?: { cause?: unknown }) {
    super(STORE_UNAVAILABLE, message, options);
    this.endpoints = endpoints;
  }
}

export class StoreCompactedError extends VeilError {
  /** The first revision the watch needed. */
  readonly requiredRevision: string;
  /** The store's compaction point: the oldest revision it still has. */
  readonly compactRevision: string;
  constructor(requiredRevision: string, compactRevision: string, message: string, options?: { cause?: unknown }) {
    super(STORE_COMPACTED, message, options);
    this.requiredRevision = requiredRevision;
    this.compactRevision = compactRevision;
  }
}

export class StoreLeaseLostError extends VeilError {
  readonly leaseId: string;
  constructor(leaseId: string, message: string, options?: { cause?: unknown }) {
    super(STORE_LEASE_LOST, message, options);
    this.leaseId = leaseId;
  }
}

export class StoreClosedError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(STORE_CLOSED, message, options);
  }
}

export class StoreRequestError extends VeilError {
  /** The store operation, e.g. "create", "watch". */
  readonly op: string;
  constructor(op: string, message: string, options?: { cause?: unknown }) {
    super(STORE_REQUEST, message, options);
    this.op = op;
  }
}

export class WatchHandlerError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(STORE_WATCH_HANDLER, message, options);
  }
}
