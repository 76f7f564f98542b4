import { isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ipFamily, ipToBytes, parseIPv4Into, parseIPv6Into } from '../../../agent/netlink/validate.js';

/** Text that looks like an address: the characters addresses use, in runs parsers trip over. */
const addressish = fc.array(fc.constantFrom('0', '1', '9', '25', '255', '256', '00', 'a', 'F', 'ffff', '12345', ':', '::', '.', '/', '%', ' '), { maxLength: 14 }).map((a) => a.join(''));

const v6Text = fc.tuple(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 8 }), fc.boolean()).map(([g, a, len, v4]) => {
  const hex = g.map((x) => x.toString(16));
  if (v4) hex.splice(6, 2, `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`);
  const n = hex.length;
  const start = Math.min(a, n);
  const end = Math.min(n, start + len);
  if (end - start < 1) return hex.join(':');
  // "::" replaces a run of groups (whatever their value: the bytes tell whether it was zeros).
  return `${hex.slice(0, start).join(':')}::${hex.slice(end).join(':')}`;
});

describe('hand-written IP parsers', () => {
  it('parseIPv4Into() accepts exactly what node:net accepts as IPv4, without leading zeros', () => {
    fc.assert(
      fc.property(addressish, (s) => {
        const ok = parseIPv4Into(s, new Uint8Array(4), 0);
        expect(ok).toBe(isIPv4(s) && !/(^|\.)0\d/.test(s));
      }),
      { numRuns: 20000 },
    );
  });

  it('parseIPv6Into() accepts exactly what node:net accepts as IPv6 without a zone index', () => {
    fc.assert(
      fc.property(fc.oneof(addressish, v6Text), (s) => {
        expect(parseIPv6Into(s, new Uint8Array(16), 0)).toBe(isIPv6(s) && !s.includes('%'));
      }),
      { numRuns: 20000 },
    );
  });

  it('parseIPv6Into() writes the bytes the groups spell, with "::" as zeros', () => {
    expect(Buffer.from(ipToBytes('fd00:10::1', 6)).toString('hex')).toBe('fd000010000000000000000000000001');
    expect(Buffer.from(ipToBytes('::ffff:192.0.2.1', 6)).toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(Buffer.from(ipToBytes('1:2:3:4:5:6:7::', 6)).toString('hex')).toBe('00010002000300040005000600070000');
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), (g) => {
        const out = new Uint8Array(16);
        expect(parseIPv6Into(g.map((x) => x.toString(16)).join(':'), out, 0)).toBe(true);
        expect(Array.from({ length: 8 }, (_, k) => (out[2 * k]! << 8) | out[2 * k + 1]!)).toEqual(g);
      }),
    );
  });

  it('ipFamily() tells 4, 6 or 0 for garbage and zone indexes', () => {
    expect(ipFamily('10.0.0.1')).toBe(4);
    expect(ipFamily('fe80::1')).toBe(6);
    expect(ipFamily('fe80::1%eth0')).toBe(0);
    expect(ipFamily('010.0.0.1')).toBe(0);
    expect(ipFamily('')).toBe(0);
  });
});
