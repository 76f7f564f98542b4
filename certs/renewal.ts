/**
 * When to renew a certificate: at half its lifetime, with ±10 % jitter on that half-life so that
 * the SVIDs a node issued in one burst do not all renew in the same second (SPIRE's rule).
 */
import { ValidationError } from '../agent/errors.js';

/** Jitter as a fraction of the half-life: renewal falls in [0.45, 0.55] of the lifetime. */
export const RENEWAL_JITTER = 0.1;

/**
 * Pure: the renewal time for a certificate valid from `notBefore` to `notAfter`, given a uniform
 * random number in [0, 1) (`random()` maps 0 → half-life × 0.9, 0.5 → half-life, →1 → × 1.1).
 */
export function renewalTime(notBefore: Date, notAfter: Date, random: () => number = Math.random): Date {
  const start = notBefore.getTime();
  const lifetime = notAfter.getTime() - start;
  if (!Number.isFinite(lifetime) || lifetime <= 0) {
    throw new ValidationError('notAfter', `Cannot compute a renewal time: notAfter "${String(notAfter)}" is not after notBefore "${String(notBefore)}"`);
  }
  const r = random();
  if (typeof r !== 'number' || !(r >= 0 && r < 1)) {
    throw new ValidationError('random', `Cannot compute a renewal time: random() returned ${String(r)}, expected a number in [0, 1)`);
  }
  const halfLife = lifetime / 2;
  const factor = 1 - RENEWAL_JITTER + 2 * RENEWAL_JITTER * r;
  return new Date(start + Math.round(halfLife * factor));
}
