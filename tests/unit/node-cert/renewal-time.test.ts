import { describe, expect, it } from 'vitest';
import { nodeCertificateRenewalTime } from '../../../agent/node-cert/node-certificate-client.js';

const DAY = 86_400_000;
const nb = new Date('2026-12-01T00:00:00Z');
const na = new Date(nb.getTime() + 7 * DAY);

describe('nodeCertificateRenewalTime()', () => {
  it('renews renewBefore ahead of expiry', () => {
    expect(nodeCertificateRenewalTime(nb, na, 2 * DAY).toISOString()).toBe('2026-12-06T00:00:00.000Z');
  });
  it('never before half the lifetime, so a long renewBefore cannot loop', () => {
    expect(nodeCertificateRenewalTime(nb, na, 6 * DAY).toISOString()).toBe('2026-12-04T12:00:00.000Z');
    expect(nodeCertificateRenewalTime(nb, na, 30 * DAY).toISOString()).toBe('2026-12-04T12:00:00.000Z');
  });
});
