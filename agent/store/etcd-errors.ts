/**
 * Turns what the etcd3 client rejects with into the store's typed errors. Unavailable,
 * deadline-exceeded and cancelled calls (etcd down, unreachable, restarting, too slow) become
 * StoreUnavailableError naming the endpoints and the fix; "lease not found" becomes
 * StoreLeaseLostError; a closed client StoreClosedError; everything else StoreRequestError.
 */
import etcd3 from 'etcd3';
import { VeilError } from '../errors.js';
import { StoreClosedError, StoreLeaseLostError, StoreRequestError, StoreUnavailableError } from './errors.js';

const { ClientClosedError, EtcdLeaseInvalidError, GRPCCancelledError, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError } =
  etcd3;

/** True for failures that a retry after a pause may cure (the connection, not the request). */
export function isTransient(err: unknown): boolean {
  return (
    err instanceof StoreUnavailableError ||
    isGrpcStatus(err, TRANSIENT_GRPC_CODES) ||
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    err instanceof GRPCCancelledError ||
    (err instanceof Error && !(err instanceof VeilError) && isRecoverableError(err))
  );
}

/** gRPC status codes of a broken or missing connection: CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE. */
const TRANSIENT_GRPC_CODES = new Set([1, 4, 14]);

/** A raw @grpc/grpc-js error (stream errors reach us uncast) with one of the given status codes. */
function isGrpcStatus(err: unknown, codes: Set<number>): boolean {
  if (!(err instanceof Error) || err instanceof VeilError) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' && codes.has(code);
}

export function unavailable(endpoints: string[], op: string, detail: string, cause?: unknown): StoreUnavailableError {
  const where = endpoints.map((e) => `"${e}"`).join(', ');
  return new StoreUnavailableError(
    endpoints,
    `Cannot reach etcd at ${where} (${op}): ${detail}; check that etcd is running and listening there, or fix the configured endpoints`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * @param op the store operation ("get", "create", ...)
 * @param subject what it was about, for the message (a key, a prefix, a lease)
 */
export function toStoreError(err: unknown, endpoints: string[], op: string, subject: string, leaseId?: string): Error {
  if (err instanceof VeilError) return err;
  if (err instanceof ClientClosedError) {
    return new StoreClosedError(`Cannot ${op} ${subject}: the store was closed; create a new one`, { cause: err });
  }
  if (err instanceof EtcdLeaseInvalidError || (err instanceof Error && err.message.includes('requested lease not found'))) {
    const id = leaseId ?? 'unknown';
    return new StoreLeaseLostError(id, `Cannot ${op} ${subject}: lease "${id}" no longer exists in etcd (expired or revoked); grant a new lease`, {
      cause: err,
    });
  }
  if (isTransient(err)) {
    return unavailable(endpoints, op, firstLine(err), err);
  }
  return new StoreRequestError(op, `The etcd server refused ${op} ${subject}: ${firstLine(err)}`, { cause: err });
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line = (msg.split('\n', 1)[0] ?? '').replace(/\.?\s*Resolution note:\s*$/, '');
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
