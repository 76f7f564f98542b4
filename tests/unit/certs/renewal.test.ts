import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { renewalTime } from '../../../certs/renewal.js';

const start = new Date('2026-01-01T00:00:00Z');
const hour = 3_600_000;
const end = new Date(start.getTime() + hour);

describe('renewalTime()', () => {
  it('renews at half-life when the jitter draw is in the middle', () => {
    expect(renewalTime(start, end, () => 0.5).getTime() - start.getTime()).toBe(hour / 2);
  });

  it('renews 10 % of the half-life early or late at the ends of the jitter range', () => {
    expect(renewalTime(start, end, () => 0).getTime() - start.getTime()).toBe(0.45 * hour);
    const late = renewalTime(start, end, () => 0.999999999).getTime() - start.getTime();
    expect(late).toBeLessThanOrEqual(0.55 * hour);
    expect(late).toBeGreaterThan(0.5499 * hour);
  });

  it('always falls within [45 %, 55 %] of any lifetime', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 * 365 * 24 * hour }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (life, r) => {
        const t = renewalTime(start, new Date(start.getTime() + life), () => r).getTime() - start.getTime();
        return t >= Math.floor(0.45 * life) && t <= Math.ceil(0.55 * life);
      }),
    );
  });

  it('refuses an empty lifetime and a random source outside [0, 1)', () => {
    expect(() => renewalTime(end, start)).toThrow(ValidationError);
    expect(() => renewalTime(start, end, () => 1)).toThrow(/random\(\) returned 1/);
    expect(() => renewalTime(start, end, () => Number.NaN)).toThrow(ValidationError);
  });
});
