import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { formatCidr, formatIp, maskHostBits, type Cidr } from '../../../agent/net/ip.js';
import { cidrPrefixes, cidrRulesToPolicyRules, withCidrIdentities } from '../../../agent/policy/cidr-identities.js';
import { contains, type CidrRule } from '../../../agent/policy/cidr-rule.js';

const c = (text: string): Cidr => {
  const [addr, len] = text.split('/') as [string, string];
  return { addr, prefixLen: Number(len), family: addr.includes(':') ? 6 : 4 };
};
const rule = (cidr: string, except: string[] = [], extra: Partial<CidrRule> = {}): CidrRule => ({
  subject: 300, direction: 'egress', cidr: c(cidr), except: except.map(c), protocol: 'tcp', port: 443, verdict: 'allow', ...extra,
});

describe('CIDR rules → identity rules', () => {
  const rules = [rule('10.0.0.0/8', ['10.1.0.0/16']), rule('10.1.2.0/24', [], { subject: 301 }), rule('10.5.0.0/16', [], { subject: 302 }), rule('fd00::/64', ['fd00::/80'])];
  const ids = new Map(cidrPrefixes(rules).map((p, i) => [formatCidr(p), 1000 + i]));
  const idOf = (p: Cidr) => ids.get(formatCidr(p))!;

  it('lists every prefix once, IPv4 first', () => {
    expect(cidrPrefixes(rules).map(formatCidr)).toEqual(['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.5.0.0/16', 'fd00::/64', 'fd00::/80']);
  });

  it('allows the identities of the prefixes inside the cidr and outside every except', () => {
    const out = cidrRulesToPolicyRules(rules, idOf);
    const peers = (subject: number) => out.filter((r) => r.subject === subject).map((r) => [...ids].find(([, v]) => v === r.peer)![0]);
    // 10.1.2.0/24 is inside the except 10.1.0.0/16: its addresses are excluded for subject 300.
    expect(peers(300)).toEqual(['10.0.0.0/8', '10.5.0.0/16', 'fd00::/64']);
    expect(peers(301)).toEqual(['10.1.2.0/24']);
    expect(out[0]).toEqual({ subject: 300, peer: ids.get('10.0.0.0/8'), direction: 'egress', protocol: 'tcp', port: 443, verdict: 'allow' });
  });

  it('refuses an identity that is not a positive integer', () => {
    expect(() => cidrRulesToPolicyRules(rules, () => 0)).toThrow(ValidationError);
    expect(() => cidrRulesToPolicyRules(rules, () => 0)).toThrow(/Prefix "10.0.0.0\/8" was given identity 0/);
  });

  it('normalizes translated rules with the identity rules', () => {
    const any = { subject: 300, peer: 0, direction: 'egress' as const, protocol: 'tcp' as const, verdict: 'allow' as const };
    expect(withCidrIdentities({ rules: [any], cidrRules: [rule('10.0.0.0/8', [], { requireEncryption: true })] }, () => 5000)).toEqual([any]);
    expect(withCidrIdentities({ rules: [any], cidrRules: [] }, () => 5000)).toEqual([any]);
  });

  it('agrees with longest-prefix resolution of addresses (property)', () => {
    // Prefixes of 10.0.0.0/8 that nest in interesting ways: lengths 8..24 over a few addresses.
    const arbPrefix = fc
      .record({ b: fc.constantFrom(0, 1, 32, 33, 64), c: fc.integer({ min: 0, max: 3 }), len: fc.constantFrom(8, 10, 11, 16, 24) })
      .map(({ b, c: cc, len }) => `${formatIp(maskHostBits(new Uint8Array([10, b, cc, 0]), len))}/${len}`);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(arbPrefix, fc.array(arbPrefix, { maxLength: 2 })), { minLength: 1, maxLength: 4 }),
        fc.array(fc.tuple(fc.constantFrom(0, 1, 2, 32, 33, 64, 65, 200), fc.integer({ min: 0, max: 3 })), { minLength: 10, maxLength: 30 }),
        (specs, addrs) => {
          // Keep only well-formed rules: excepts strictly inside their cidr (as the parser demands).
          const rs = specs
            .map(([cidr, ex]) => rule(cidr, ex.filter((e) => c(e).prefixLen > c(cidr).prefixLen && contains(c(cidr), c(e)))))
            .map((r, i) => ({ ...r, subject: 300 + i }));
          const prefixes = cidrPrefixes(rs);
          const idOf = (p: Cidr) => 1000 + prefixes.findIndex((q) => formatCidr(q) === formatCidr(p));
          const out = cidrRulesToPolicyRules(rs, idOf);
          for (const [b, cc] of addrs) {
            const host: Cidr = { addr: `10.${b}.${cc}.1`, prefixLen: 32, family: 4 };
            const longest = prefixes.filter((p) => contains(p, host)).sort((x, y) => y.prefixLen - x.prefixLen)[0];
            const resolved = longest ? idOf(longest) : 2; // world
            for (const r of rs) {
              const want = contains(r.cidr, host) && !r.except.some((e) => contains(e, host));
              const got = out.some((x) => x.subject === r.subject && x.peer === resolved);
              expect(got).toBe(want);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
