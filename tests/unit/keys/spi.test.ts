import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { SpiExhaustedError } from '../../../agent/keys/errors.js';
import { SpiAllocator, spiCandidate, SPI_MAX, SPI_MIN, type SpiRequest } from '../../../agent/keys/spi.js';

const request = fc.record({
  senderIdentity: fc.integer({ min: 0, max: 70000 }),
  senderNode: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,12}$/),
  generation: fc.integer({ min: 0, max: 20 }),
  direction: fc.constantFrom('in' as const, 'out' as const),
});

const req = (senderIdentity: number, generation = 1, senderNode = 'node-a'): SpiRequest => ({ senderIdentity, senderNode, generation, direction: 'in' });

describe('SPI allocation', () => {
  it('computes a deterministic candidate outside the reserved range 0..255', () => {
    const a = spiCandidate(req(300));
    expect(spiCandidate(req(300))).toBe(a);
    expect(a).toBeGreaterThanOrEqual(SPI_MIN);
    expect(a).toBeLessThanOrEqual(SPI_MAX);
    expect(spiCandidate(req(300, 2))).not.toBe(a); // a rekey changes the SPI
    expect(spiCandidate({ ...req(300), direction: 'out' })).not.toBe(a);
    expect(spiCandidate(req(300, 1, 'node-b'))).not.toBe(a);
    fc.assert(fc.property(request, (r) => spiCandidate(r) >= 256));
  });

  it('hands out the candidate when it is free, and the same SPI again for the same request', () => {
    const t = new SpiAllocator();
    const spi = t.allocate(req(400));
    expect(spi).toBe(spiCandidate(req(400)));
    expect(t.allocate(req(400))).toBe(spi);
    expect(t.size).toBe(1);
  });

  it('probes past an SPI already in use (adopted from the kernel)', () => {
    const t = new SpiAllocator();
    const c = spiCandidate(req(500));
    t.reserve(c);
    const next = c === SPI_MAX ? SPI_MIN : c + 1;
    expect(t.allocate(req(500))).toBe(next);
  });

  it('never gives a receiver a duplicate SPI, with collisions forced by a tiny range', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 256, max: 300 }),
        fc.integer({ min: 0, max: 40 }),
        fc.array(fc.oneof(fc.record({ op: fc.constant('alloc' as const), r: request }), fc.record({ op: fc.constant('release' as const), i: fc.nat() })), { maxLength: 200 }),
        (min, width, ops) => {
          const t = new SpiAllocator({ min, max: min + width });
          const live = new Map<number, string>();
          for (const o of ops) {
            if (o.op === 'alloc') {
              const key = JSON.stringify(o.r);
              const existing = [...live].find(([, k]) => k === key)?.[0];
              if (existing === undefined && live.size === width + 1) {
                expect(() => t.allocate(o.r)).toThrow(SpiExhaustedError);
                continue;
              }
              const spi = t.allocate(o.r);
              expect(spi).toBeGreaterThanOrEqual(min);
              expect(spi).toBeLessThanOrEqual(min + width);
              if (existing !== undefined) expect(spi).toBe(existing);
              else expect(live.has(spi)).toBe(false);
              live.set(spi, key);
            } else if (live.size) {
              const spi = [...live.keys()][o.i % live.size]!;
              expect(t.release(spi)).toBe(true);
              live.delete(spi);
            }
            expect(t.size).toBe(live.size);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('allocates 100,000 distinct SPIs over the full range for 5,000 nodes × 20 identities', () => {
    const t = new SpiAllocator();
    const seen = new Set<number>();
    for (let n = 0; n < 5000; n++) for (let i = 0; i < 20; i++) seen.add(t.allocate(req(256 + i, 1, `node-${n}`)));
    expect(seen.size).toBe(100_000);
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(256);
  });

  it('reports exhaustion, refuses reserved and out-of-range SPIs, and validates requests', () => {
    const t = new SpiAllocator({ min: 1000, max: 1001 });
    t.allocate(req(1));
    t.allocate(req(2));
    expect(() => t.allocate(req(3))).toThrow('Cannot allocate an SPI: all 2 SPIs in 1000..1001 are in use on this receiver; release retired SAs first');
    expect(() => new SpiAllocator({ min: 255 })).toThrow(ValidationError);
    expect(() => new SpiAllocator({ min: 0 })).toThrow(/SPIs 0..255 are reserved/);
    expect(() => new SpiAllocator({ min: 500, max: 400 })).toThrow(ValidationError);
    expect(() => t.reserve(999)).toThrow(ValidationError);
    expect(() => t.reserve(1000)).toThrow(/already in use/);
    expect(() => t.allocate({ ...req(1), direction: 'sideways' as never })).toThrow(/Invalid direction "sideways"/);
    expect(() => t.allocate({ ...req(1), senderNode: '' })).toThrow(ValidationError);
    expect(() => t.allocate({ ...req(1), generation: -1 })).toThrow(ValidationError);
    expect(t.release(4242)).toBe(false);
  });
});
