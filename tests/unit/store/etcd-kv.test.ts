/** etcd's prefix range end: the smallest key greater than every key with the prefix. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { prefixRangeEnd } from '../../../agent/store/etcd-kv.js';

describe('prefixRangeEnd', () => {
  it('increments the last byte: "/a/" -> "/a0"', () => {
    expect(prefixRangeEnd(Buffer.from('/a/')).toString()).toBe('/a0');
  });

  it('drops trailing 0xff bytes before incrementing', () => {
    expect(prefixRangeEnd(Buffer.from([0x61, 0xff, 0xff]))).toEqual(Buffer.from([0x62]));
  });

  it('is "\\0" (the end of the key space) when every byte is 0xff', () => {
    expect(prefixRangeEnd(Buffer.from([0xff, 0xff]))).toEqual(Buffer.from([0]));
  });

  it('does not modify its argument', () => {
    const b = Buffer.from('/x/');
    prefixRangeEnd(b);
    expect(b.toString()).toBe('/x/');
  });

  it('every key with the prefix sorts before the end, every key without it that sorts after the prefix does not', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ minLength: 1, maxLength: 16 }), (p, tail, other) => {
        const prefix = Buffer.from(p);
        const end = prefixRangeEnd(prefix);
        const inside = Buffer.concat([prefix, Buffer.from(tail)]);
        const allFf = prefix.every((b) => b === 0xff);
        if (!allFf) expect(Buffer.compare(inside, end)).toBeLessThan(0);
        const o = Buffer.from(other);
        const hasPrefix = o.length >= prefix.length && o.subarray(0, prefix.length).equals(prefix);
        if (!hasPrefix && Buffer.compare(o, prefix) >= 0 && !allFf) expect(Buffer.compare(o, end)).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});
