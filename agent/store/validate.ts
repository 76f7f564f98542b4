/**
 * Argument checks shared by every Store implementation, so that both reject exactly the same
 * input with the same ValidationError (field, bad value, fix). Bounds: a key (or prefix) is 1 to
 * 1 KiB of UTF-8, a value at most 1 MiB (etcd's default request limit is 1.5 MiB), revisions are
 * decimal int64 strings, lease TTLs whole seconds from 1 to 1 day.
 */
import { ValidationError } from '../errors.js';

export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1024 * 1024;
export const MIN_TTL_SECONDS = 1;
export const MAX_TTL_SECONDS = 86_400;
const MAX_INT64 = (1n << 63n) - 1n;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A value for an error message: JSON-quoted and cut to 64 characters. */
export function quote(value: unknown): string {
  let s: string;
  if (typeof value === 'string') s = value;
  else if (value === undefined) return 'undefined';
  else if (typeof value === 'bigint') s = value.toString();
  else {
    try {
      s = JSON.stringify(value) ?? String(value);
    } catch {
      s = Object.prototype.toString.call(value);
    }
  }
  if (s.length > 64) s = `${s.slice(0, 64)}…`;
  return JSON.stringify(s);
}

/** A key or prefix: a non-empty, well-formed string of at most 1 KiB in UTF-8. */
export function checkKey(field: 'key' | 'prefix', key: unknown): string {
  if (typeof key !== 'string') {
    throw new ValidationError(field, `Store ${field} must be a string, got ${quote(key)}: pass a path such as "/veil/identities/1"`);
  }
  if (key.length === 0) {
    throw new ValidationError(field, `Store ${field} is empty: pass a path such as "/veil/identities/"`);
  }
  if (LONE_SURROGATE.test(key)) {
    throw new ValidationError(field, `Store ${field} ${quote(key)} is not well-formed Unicode (lone surrogate): pass valid text`);
  }
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) {
    throw new ValidationError(field, `Store ${field} ${quote(key)} is ${bytes} bytes: the limit is ${MAX_KEY_BYTES} bytes, use a shorter path`);
  }
  return key;
}

/** A value: bytes (Buffer or Uint8Array) of at most 1 MiB; returned as a private copy. */
export function checkValue(value: unknown): Buffer {
  if (!(value instanceof Uint8Array)) {
    throw new ValidationError('value', `Store value must be a Buffer, got ${quote(typeof value)}: encode it first, e.g. Buffer.from(JSON.stringify(x))`);
  }
  if (value.byteLength > MAX_VALUE_BYTES) {
    throw new ValidationError('value', `Store value is ${value.byteLength} bytes: the limit is ${MAX_VALUE_BYTES} bytes (1 MiB), store less per key`);
  }
  return Buffer.from(value);
}

/**
 * A revision: a decimal int64 string. `min` is 1 for compare-and-swap tokens (a real write's
 * revision) and 0 for a watch's afterRevision ("from the very beginning").
 */
export function checkRevision(field: string, rev: unknown, min: 0 | 1): bigint {
  if (typeof rev !== 'string' || !/^(0|[1-9][0-9]{0,18})$/.test(rev)) {
    throw new ValidationError(field, `Store ${field} must be a decimal revision string such as "42", got ${quote(rev)}: pass a revision the store returned`);
  }
  const n = BigInt(rev);
  if (n < BigInt(min) || n > MAX_INT64) {
    throw new ValidationError(field, `Store ${field} ${quote(rev)} is out of range: it must be from ${min} to ${MAX_INT64}, pass a revision the store returned`);
  }
  return n;
}

/** A lease TTL in whole seconds. */
export function checkTtl(ttlSeconds: unknown): number {
  if (
    typeof ttlSeconds !== 'number' ||
    !Number.isInteger(ttlSeconds) ||
    ttlSeconds < MIN_TTL_SECONDS ||
    ttlSeconds > MAX_TTL_SECONDS
  ) {
    throw new ValidationError(
      'ttlSeconds',
      `Lease TTL ${quote(ttlSeconds)} is invalid: it must be a whole number of seconds from ${MIN_TTL_SECONDS} to ${MAX_TTL_SECONDS}`,
    );
  }
  return ttlSeconds;
}

/** Watch handlers: onEvent and onError functions. */
export function checkHandlers(handlers: unknown): void {
  const h = handlers as { onEvent?: unknown; onError?: unknown } | null;
  if (!h || typeof h.onEvent !== 'function' || typeof h.onError !== 'function') {
    throw new ValidationError('handlers', 'Watch handlers must have onEvent and onError functions: pass { onEvent, onError }');
  }
}
