import { isIP, isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { parseAddresses } from '../../../agent/netlink/address.js';
import {
  canonicalCidr,
  canonicalIp,
  checkCidr,
  checkEndpoint,
  checkIp,
  formatCidr,
  formatEndpoint,
  formatIp,
  hostBitsZero,
  ipFamily,
  maskHostBits,
  parseIp,
  parseIPv4Into,
  parseIPv6Into,
  parsePrefixLen,
  quote,
} from '../../../agent/net/ip.js';
import { attr, nlmsg } from '../../support/nl-fixture.js';
import { AF_INET, AF_INET6, IFA, ifaddrmsg, RTM } from '../netlink/rtnl-fixtures.js';
import { validationError } from '../../support/validation-error.js';

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
    expect(Buffer.from(parseIp('fd00:10::1')!).toString('hex')).toBe('fd000010000000000000000000000001');
    expect(Buffer.from(parseIp('::ffff:192.0.2.1')!).toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(Buffer.from(parseIp('1:2:3:4:5:6:7::')!).toString('hex')).toBe('00010002000300040005000600070000');
    expect(Buffer.from(parseIp('192.0.2.1')!).toString('hex')).toBe('c0000201');
    expect(parseIp('192.0.2.1/24')).toBeUndefined();
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

/** The addon's inet_ntop: an RTM_NEWADDR carrying `bytes` as IFA_ADDRESS, parsed by C++. */
function addonNtop(bytes: Uint8Array): string {
  const v6 = bytes.length === 16;
  const msg = nlmsg(RTM.NEWADDR, 0, ifaddrmsg({ family: v6 ? AF_INET6 : AF_INET, prefixlen: v6 ? 128 : 32, index: 1 }), [
    attr.bytes(IFA.ADDRESS, Buffer.from(bytes)),
  ]);
  return parseAddresses(msg)[0]!.address.replace(/\/\d+$/, '');
}

/** Bytes with long zero runs and IPv4-mapped/compatible prefixes, where formatters disagree. */
const v6Bytes = fc
  .tuple(fc.array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0xabc), { minLength: 8, maxLength: 8 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean())
  .map(([words, random, useRandom]) => {
    if (useRandom) return random;
    const b = new Uint8Array(16);
    words.forEach((w, i) => {
      b[2 * i] = w >> 8;
      b[2 * i + 1] = w & 0xff;
    });
    return b;
  });

describe('formatIp()', () => {
  it('writes exactly what the addon\'s inet_ntop writes, for any IPv4 or IPv6 bytes', () => {
    fc.assert(
      fc.property(v6Bytes, (b) => {
        expect(formatIp(b)).toBe(addonNtop(b));
        expect(formatIp(b.subarray(0, 4))).toBe(addonNtop(b.subarray(0, 4)));
      }),
      { numRuns: 3000 },
    );
  });

  it('follows RFC 5952 on a known table', () => {
    const table: [string, string][] = [
      ['00000000000000000000000000000000', '::'],
      ['00000000000000000000000000000001', '::1'],
      ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
      ['20010db8000000010000000000000001', '2001:db8:0:1::1'],
      ['20010db8000100010001000100010001', '2001:db8:1:1:1:1:1:1'],
      ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
      ['00010000000000020000000000000000', '1:0:0:2::'],
      ['00000000000000000000ffffc0000201', '::ffff:192.0.2.1'],
      ['000000000000000000000000c0000201', '::192.0.2.1'],
      ['fe800000000000000000000000000001', 'fe80::1'],
    ];
    for (const [hex, text] of table) {
      expect(formatIp(Buffer.from(hex, 'hex'))).toBe(text);
      expect(Buffer.from(parseIp(text)!).toString('hex')).toBe(hex);
    }
    expect(formatIp(Uint8Array.of(10, 0, 0, 255))).toBe('10.0.0.255');
  });

  it('round-trips through parseIp() for any bytes', () => {
    fc.assert(
      fc.property(v6Bytes, (b) => {
        expect(parseIp(formatIp(b))).toEqual(b);
        expect(parseIp(formatIp(b.subarray(0, 4)))).toEqual(b.subarray(0, 4));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('checkIp() and canonicalIp()', () => {
  it('accept what node:net accepts (no zone ids) and name the field, quote the value and say the fix', () => {
    fc.assert(
      fc.property(fc.oneof(addressish, v6Text), (s) => {
        const fam = s.includes('%') ? 0 : isIP(s);
        if (fam === 0) {
          expect(ipFamily(s)).toBe(0);
          const e = validationError(() => checkIp('routes[3].gateway', s));
          expect(e.field).toBe('routes[3].gateway');
          expect(e.message).toBe(`Invalid routes[3].gateway ${quote(s)}: use an IPv4 or IPv6 address such as "192.0.2.1" or "2001:db8::1"`);
        } else {
          expect(checkIp('f', s)).toEqual({ addr: s, family: fam });
          expect(canonicalIp('f', s)).toBe(formatIp(parseIp(s)!));
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('refuse the other family with a fix, and non-strings', () => {
    expect(validationError(() => checkIp('gw', 'fd00::1', 4)).message).toBe('Invalid gw "fd00::1": it is IPv6 but the object is IPv4; use an IPv4 address');
    for (const bad of [undefined, null, 7, {}, ['10.0.0.1']]) validationError(() => checkIp('gw', bad));
    expect(canonicalIp('f', 'FD00::0001')).toBe('fd00::1');
    expect(canonicalIp('f', '::FFFF:c000:201')).toBe('::ffff:192.0.2.1');
  });

  it('build the caller\'s own error when given one', () => {
    const mine = (field: string, value: unknown, fix: string) => new ValidationError(field, `Bad ${field}=${String(value)} (${fix})`);
    expect(() => checkIp('x', 'nope', undefined, mine)).toThrow('Bad x=nope (use an IPv4');
  });
});

describe('CIDRs', () => {
  it('checkCidr() takes a bare address as a host prefix unless a prefix is required', () => {
    expect(checkCidr('f', '10.0.0.1')).toEqual({ addr: '10.0.0.1', prefixLen: 32, family: 4 });
    expect(checkCidr('f', 'fd00::1/64')).toEqual({ addr: 'fd00::1', prefixLen: 64, family: 6 });
    expect(validationError(() => checkCidr('f', '10.0.0.1', { requirePrefix: true })).message).toBe(
      'Invalid f "10.0.0.1": add a prefix length, e.g. "10.0.0.1/32"',
    );
  });

  it('checkCidr() refuses bad prefixes (leading zeros too), the other family and, for networks, host bits', () => {
    for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0.0/08', '10.0.0.0/-1', '10.0.0.0/', '10.0.0.0/1.5', '10.0.0/8', '/8', 'x/1', '', '10.0.0.0/8/8', '010.0.0.1/32', '10.0.0.256/32', '10.0.0.1/032']) {
      expect(validationError(() => checkCidr('routes[0].dst', bad)).field).toBe('routes[0].dst');
    }
    expect(validationError(() => checkCidr('f', '10.0.0.0/33')).message).toBe('Invalid f "10.0.0.0/33": use a prefix length from 0 to 32');
    expect(validationError(() => checkCidr('f', 'fd00::/64', { family: 4 })).message).toContain('use an IPv4 prefix');
    expect(validationError(() => checkCidr('f', '10.1.2.3/8', { network: true })).message).toBe('Invalid f "10.1.2.3/8": host bits are set; use "10.0.0.0/8"');
    expect(validationError(() => checkCidr('f', 'fd00::1/64', { network: true })).message).toContain('"fd00::/64"');
    expect(checkCidr('f', '0.0.0.0/0', { network: true }).prefixLen).toBe(0);
  });

  it('canonicalCidr() clears host bits and spells the address as inet_ntop does', () => {
    const cases: [string, string][] = [
      ['10.0.1.7/24', '10.0.1.0/24'],
      ['255.255.255.255/1', '128.0.0.0/1'],
      ['192.0.2.255/31', '192.0.2.254/31'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['FD00:0:0:0:1::1/64', 'fd00::/64'],
      ['2001:DB8:0:0:1::ff/48', '2001:db8::/48'],
      ['2001:db8::1/128', '2001:db8::1/128'],
      ['::ffff:192.0.2.7/120', '::ffff:192.0.2.0/120'],
      ['::/0', '::/0'],
    ];
    for (const [text, canonical] of cases) expect(formatCidr(canonicalCidr('f', text))).toBe(canonical);
  });

  it('canonicalCidr() agrees with masking the bytes for any address and prefix, and is idempotent', () => {
    fc.assert(
      fc.property(v6Bytes, fc.boolean(), fc.integer({ min: 0, max: 128 }), (b, v6, p) => {
        const bytes = v6 ? Uint8Array.from(b) : b.slice(0, 4);
        const len = v6 ? p : p % 33;
        const text = `${formatIp(bytes)}/${len}`;
        const c = canonicalCidr('f', text);
        const masked = maskHostBits(Uint8Array.from(bytes), len);
        expect(c).toEqual({ addr: formatIp(masked), prefixLen: len, family: v6 ? 6 : 4 });
        expect(hostBitsZero(masked, 0, len, bytes.length * 8)).toBe(true);
        expect(hostBitsZero(bytes, 0, len, bytes.length * 8)).toBe(formatIp(masked) === formatIp(bytes));
        expect(formatCidr(canonicalCidr('f', formatCidr(c)))).toBe(formatCidr(c));
        expect(checkCidr('f', formatCidr(c), { network: true }).prefixLen).toBe(len);
      }),
      { numRuns: 3000 },
    );
  });

  it('parsePrefixLen() takes 0..max in decimal without leading zeros', () => {
    expect(parsePrefixLen('x/0', 2, 3, 32)).toBe(0);
    expect(parsePrefixLen('x/128', 2, 5, 128)).toBe(128);
    for (const bad of ['x/129', 'x/00', 'x/08', 'x/', 'x/1a', 'x/1000', 'x/-1']) expect(parsePrefixLen(bad, 2, bad.length, 128)).toBe(-1);
  });
});

describe('endpoints', () => {
  it('checkEndpoint() accepts "ip:port" and "[v6]:port" and canonicalises the address', () => {
    expect(checkEndpoint('e', '192.0.2.1:51820')).toEqual({ family: 4, address: '192.0.2.1', port: 51820 });
    expect(checkEndpoint('e', '[2001:DB8:0:0::1]:1')).toEqual({ family: 6, address: '2001:db8::1', port: 1 });
    expect(checkEndpoint('e', '[::ffff:192.0.2.1]:65535')).toEqual({ family: 6, address: '::ffff:192.0.2.1', port: 65535 });
    expect(formatEndpoint(checkEndpoint('e', '[2001:DB8::1]:51820'))).toBe('[2001:db8::1]:51820');
  });

  it('checkEndpoint() refuses missing ports, bad ports, bare IPv6, bracketed IPv4, zone ids and host names', () => {
    for (const bad of [
      '192.0.2.1',
      '192.0.2.1:0',
      '192.0.2.1:65536',
      '192.0.2.1:+1',
      '192.0.2.1:',
      ':51820',
      '2001:db8::1:51820',
      '[192.0.2.1]:5',
      '[fe80::1%eth0]:5',
      '[2001:db8::1]5',
      '[::1]',
      '300.1.1.1:5',
      '01.2.3.4:5',
      'example.com:51820',
      12,
    ]) {
      const e = validationError(() => checkEndpoint('peers[3].endpoint', bad));
      expect(e.field).toBe('peers[3].endpoint');
      expect(e.message).toMatch(/^Invalid peers\[3\]\.endpoint ".*": .*; use "192\.0\.2\.1:51820" or "\[2001:db8::1\]:51820"$/s);
    }
  });

  it('checkEndpoint() round-trips any address and port through formatEndpoint()', () => {
    fc.assert(
      fc.property(v6Bytes, fc.boolean(), fc.integer({ min: 1, max: 65535 }), (b, v6, port) => {
        const ep = { family: v6 ? 6 : 4, address: formatIp(v6 ? b : b.subarray(0, 4)), port } as const;
        expect(checkEndpoint('e', formatEndpoint(ep))).toEqual(ep);
      }),
    );
  });
});
