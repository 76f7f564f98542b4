import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuditSignatureError } from '../../../agent/audit/errors.js';
import { GENESIS_PREV } from '../../../agent/audit/line-format.js';
import type { CheckpointVerifier } from '../../../agent/audit/signer.js';
import { verifyAuditBuffer } from '../../../agent/audit/verify.js';

/** Trusts nothing: any checkpoint fails, so no garbage can come out "intact". */
const trustsNothing: CheckpointVerifier = {
  verify() {
    throw new AuditSignatureError('No CA is trusted in this test');
  },
};

describe('verifyAuditBuffer() on hostile input', () => {
  it('never throws and never reports random bytes as intact', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const r = verifyAuditBuffer(Buffer.from(bytes), trustsNothing);
        expect(r.status).not.toBe('intact');
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on random JSON lines shaped like audit lines', () => {
    const line = fc.record({
      level: fc.constantFrom('audit', 'info'),
      v: fc.constantFrom(1, 2),
      seq: fc.integer({ min: 0, max: 5 }),
      time: fc.constantFrom('2026-11-23T10:00:00.000Z', 'yesterday'),
      node: fc.constantFrom('node-a', 'NODE'),
      prev: fc.constantFrom(GENESIS_PREV, 'x'),
      event: fc.constantFrom('key.generated', 'audit.checkpoint', 'audit.recovered', 'nope'),
      generation: fc.anything(),
      final: fc.anything(),
      certFingerprint: fc.anything(),
      sigAlg: fc.constantFrom('ed25519', 'rsa'),
      signature: fc.constantFrom('AAAA', 1),
      certificate: fc.anything(),
      tornBytes: fc.anything(),
    });
    fc.assert(
      fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
        const text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
        expect(verifyAuditBuffer(Buffer.from(text), trustsNothing).status).not.toBe('intact');
      }),
      { numRuns: 500 },
    );
  });

  it('reports an empty file as unverified, not intact', () => {
    expect(verifyAuditBuffer(Buffer.alloc(0), trustsNothing)).toMatchObject({ status: 'unverified', line: 1 });
  });
});
