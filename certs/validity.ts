/**
 * Lifetimes and validity windows. Defaults follow SPIRE's experience (LESSONS.md §Identity):
 * SVIDs live 1 h, a signing certificate at least six times longer.
 */
import { ValidationError } from '../agent/errors.js';
import { CertificateExpiredError, CertificateNotYetValidError } from './errors.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Default SVID lifetime: 1 h. */
export const DEFAULT_SVID_TTL_MS = HOUR;
/** Default node certificate lifetime: 7 days (renewed at half-life by the operator). */
export const DEFAULT_NODE_TTL_MS = 7 * DAY;
/** Default cluster CA lifetime: 10 years. */
export const DEFAULT_CA_TTL_MS = 3650 * DAY;
/** Default clock skew a verifier tolerates at either end of a validity window. */
export const DEFAULT_CLOCK_SKEW_MS = 60_000;
/** Largest clock skew a verifier may be configured to tolerate. */
export const MAX_CLOCK_SKEW_MS = 15 * 60_000;
/** notBefore is set this far in the past so verifiers with a slightly slow clock accept at once. */
export const NOT_BEFORE_BACKDATE_MS = 60_000;
/** Shortest lifetime Veil issues. */
export const MIN_TTL_MS = 60_000;
/** Longest lifetime Veil issues (the CA's 10 years plus a margin). */
export const MAX_TTL_MS = 20 * 365 * DAY;

export function validateTtl(ttlMs: unknown, field: string): number {
  if (typeof ttlMs !== 'number' || !Number.isInteger(ttlMs) || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    throw new ValidationError(field, `Invalid lifetime ${String(ttlMs)} ms: use a whole number of ms between ${MIN_TTL_MS} (1 min) and ${MAX_TTL_MS} (20 years)`);
  }
  return ttlMs;
}

export function validateClockSkew(skewMs: unknown, field = 'clockSkewMs'): number {
  if (typeof skewMs !== 'number' || !Number.isInteger(skewMs) || skewMs < 0 || skewMs > MAX_CLOCK_SKEW_MS) {
    throw new ValidationError(field, `Invalid clock skew ${String(skewMs)} ms: use a whole number of ms from 0 to ${MAX_CLOCK_SKEW_MS} (15 min)`);
  }
  return skewMs;
}

export function validateNow(now: unknown, field = 'now'): Date {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new ValidationError(field, `Invalid time "${String(now)}": pass a valid Date`);
  }
  return now;
}

/**
 * Throws CertificateNotYetValidError when `now + skew < notBefore`, CertificateExpiredError when
 * `now - skew > notAfter`.
 */
export function checkValidity(
  cert: { notBefore: Date; notAfter: Date },
  what: string,
  now: Date,
  skewMs: number,
): void {
  const t = now.getTime();
  if (t + skewMs < cert.notBefore.getTime()) {
    throw new CertificateNotYetValidError(
      cert.notBefore,
      `${capitalise(what)} is not valid before ${cert.notBefore.toISOString()} (now ${now.toISOString()}, tolerated skew ${skewMs / 1000} s): check the clocks of issuer and verifier`,
    );
  }
  if (t - skewMs > cert.notAfter.getTime()) {
    throw new CertificateExpiredError(
      cert.notAfter,
      `${capitalise(what)} expired at ${cert.notAfter.toISOString()} (now ${now.toISOString()}, tolerated skew ${skewMs / 1000} s): issue a new one`,
    );
  }
}

export function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
