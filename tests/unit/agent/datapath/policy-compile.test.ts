import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compilePolicy,
  lookupPolicy,
  PolicyCompileError,
  policyKeyId,
  type PolicyEntry,
  type PolicyValue,
} from '../../../../agent/datapath/policy-compile.js';
import { MapsAbi } from '../../../../agent/datapath/layout.js';
import { PROTOCOL_NUMBERS, type PolicyEnforcement, type PolicyRule } from '../../../../agent/policy/rule.js';

const ALLOW = { verdict: 'allow', flags: 0 };
const DENY = { verdict: 'deny', flags: 0 };

function asMap(entries: PolicyEntry[]): Map<string, PolicyValue> {
  return new Map(entries.map((e) => [policyKeyId(e.key), e.value]));
}

/** The verdict rules mean, straight from their definition (no map): what the program must do. */
function semantics(
  rules: PolicyRule[],
  enf: PolicyEnforcement[],
  q: { subject: number; peer: number; direction: 'ingress' | 'egress'; proto: number; port: number },
): { verdict: 'allow' | 'deny'; level: number } {
  const matching = rules.filter(
    (r) =>
      r.subject === q.subject &&
      r.direction === q.direction &&
      (r.peer === 0 || r.peer === q.peer) &&
      (r.protocol === 'any' || PROTOCOL_NUMBERS[r.protocol] === q.proto) &&
      (r.port === undefined || (q.port >= r.port && q.port <= (r.endPort ?? r.port))),
  );
  if (matching.some((r) => r.verdict === 'deny')) return { verdict: 'deny', level: 0 };
  const enforced = enf.find((e) => e.identity === q.subject)?.[q.direction] === true;
  if (!enforced) return { verdict: 'allow', level: 0 };
  const allows = matching.filter((r) => r.verdict === 'allow');
  if (allows.length === 0) return { verdict: 'deny', level: 0 };
  return {
    verdict: 'allow',
    level: Math.min(...allows.map((r) => (r.requireAuthenticatedIdentity ? 2 : r.requireEncryption ? 1 : 0))),
  };
}

/** What the datapath decides from the compiled map (lookup + endpoint default). */
function datapath(
  map: Map<string, PolicyValue>,
  enf: PolicyEnforcement[],
  q: { subject: number; peer: number; direction: 'ingress' | 'egress'; proto: number; port: number },
): { verdict: 'allow' | 'deny'; level: number } {
  const v = lookupPolicy(map, q);
  const enforced = enf.find((e) => e.identity === q.subject)?.[q.direction] === true;
  if (!v) return { verdict: enforced ? 'deny' : 'allow', level: 0 };
  if (v.verdict === 'deny') return { verdict: 'deny', level: 0 };
  const level = v.flags & MapsAbi.POL_F_REQUIRE_AUTH_IDENTITY ? 2 : v.flags & MapsAbi.POL_F_REQUIRE_ENCRYPTION ? 1 : 0;
  return { verdict: 'allow', level };
}

describe('compilePolicy()', () => {
  it('compiles a port range to one key per port', () => {
    const entries = compilePolicy(
      [{ subject: 300, peer: 400, direction: 'ingress', protocol: 'tcp', port: 80, endPort: 82, verdict: 'allow' }],
      [{ identity: 300, ingress: true, egress: false }],
    );
    expect(entries).toEqual(
      [80, 81, 82].map((dport) => ({ key: { subject: 300, peer: 400, dport, proto: 6, direction: 'ingress' }, value: ALLOW })),
    );
  });

  it('folds deny wins into the intersection of a broad allow and a port deny', () => {
    // allow everything from 400, deny tcp/22 from anyone: (400, tcp, 22) must be a deny key
    const entries = compilePolicy(
      [
        { subject: 300, peer: 400, direction: 'ingress', protocol: 'any', verdict: 'allow' },
        { subject: 300, peer: 0, direction: 'ingress', protocol: 'tcp', port: 22, verdict: 'deny' },
      ],
      [{ identity: 300, ingress: true, egress: false }],
    );
    const map = asMap(entries);
    expect(map.get(policyKeyId({ subject: 300, peer: 400, dport: 22, proto: 6, direction: 'ingress' }))).toEqual(DENY);
    expect(lookupPolicy(map, { subject: 300, peer: 400, direction: 'ingress', proto: 6, port: 22 })).toEqual(DENY);
    expect(lookupPolicy(map, { subject: 300, peer: 400, direction: 'ingress', proto: 6, port: 23 })).toEqual(ALLOW);
    expect(lookupPolicy(map, { subject: 300, peer: 500, direction: 'ingress', proto: 6, port: 22 })).toEqual(DENY);
  });

  it('compiles only denies in a direction the subject is not isolated in', () => {
    const entries = compilePolicy(
      [
        { subject: 300, peer: 400, direction: 'egress', protocol: 'udp', port: 53, verdict: 'allow' },
        { subject: 300, peer: 500, direction: 'egress', protocol: 'any', verdict: 'deny' },
      ],
      [],
    );
    expect(entries).toEqual([{ key: { subject: 300, peer: 500, dport: 0, proto: 0, direction: 'egress' }, value: DENY }]);
  });

  it('keeps the least demanding requirement among overlapping allows', () => {
    const entries = compilePolicy(
      [
        { subject: 300, peer: 400, direction: 'ingress', protocol: 'tcp', port: 443, verdict: 'allow', requireAuthenticatedIdentity: true },
        { subject: 300, peer: 0, direction: 'ingress', protocol: 'tcp', verdict: 'allow', requireEncryption: true },
      ],
      [{ identity: 300, ingress: true, egress: true }],
    );
    const map = asMap(entries);
    expect(lookupPolicy(map, { subject: 300, peer: 400, direction: 'ingress', proto: 6, port: 443 })).toEqual({
      verdict: 'allow',
      flags: MapsAbi.POL_F_REQUIRE_ENCRYPTION,
    });
    expect(lookupPolicy(map, { subject: 300, peer: 400, direction: 'ingress', proto: 17, port: 443 })).toBeUndefined();
  });

  it('treats 1-65535 as any port and rejects a range above the bound with a typed error', () => {
    const any = compilePolicy(
      [{ subject: 300, peer: 0, direction: 'ingress', protocol: 'tcp', port: 1, endPort: 65535, verdict: 'allow' }],
      [{ identity: 300, ingress: true, egress: false }],
    );
    expect(any.map((e) => e.key.dport)).toEqual([0]);
    const big = (): PolicyEntry[] =>
      compilePolicy(
        [{ subject: 300, peer: 0, direction: 'ingress', protocol: 'tcp', port: 1000, endPort: 3000, verdict: 'allow' }],
        [{ identity: 300, ingress: true, egress: false }],
      );
    expect(big).toThrow(PolicyCompileError);
    expect(big).toThrow(/Cannot compile rule "allow ingress subject 300 peer 0 tcp\/1000-3000": its port range has 2001 ports, above the bound of 1024/);
    expect(
      compilePolicy(
        [{ subject: 300, peer: 0, direction: 'ingress', protocol: 'tcp', port: 1000, endPort: 3000, verdict: 'allow' }],
        [{ identity: 300, ingress: true, egress: false }],
        { maxPortsPerRule: 4096 },
      ),
    ).toHaveLength(2001);
  });

  it('rejects invalid rules and a result larger than the map', () => {
    const enf = [{ identity: 300, ingress: true, egress: true }];
    const cases: Array<[PolicyRule, RegExp]> = [
      [{ subject: 300, peer: 0, direction: 'ingress', protocol: 'icmp', port: 1, verdict: 'allow' }, /ports apply only to tcp, udp and sctp/],
      [{ subject: 300, peer: 0, direction: 'ingress', protocol: 'tcp', port: 90, endPort: 80, verdict: 'allow' }, /1 <= port <= endPort <= 65535/],
      [{ subject: 0, peer: 0, direction: 'ingress', protocol: 'tcp', verdict: 'allow' }, /subject "0" is not an identity/],
      [{ subject: 300, peer: -1, direction: 'ingress', protocol: 'tcp', verdict: 'allow' }, /peer "-1" is not an identity/],
      [{ subject: 300, peer: 0, direction: 'ingress', protocol: 'gre' as never, verdict: 'allow' }, /unknown protocol/],
      [{ subject: 300, peer: 0, direction: 'ingress', protocol: 'tcp', endPort: 5, verdict: 'allow' }, /endPort needs a port/],
    ];
    for (const [rule, msg] of cases) {
      expect(() => compilePolicy([rule], enf)).toThrow(msg);
    }
    expect(() =>
      compilePolicy([{ subject: 300, peer: 0, direction: 'ingress', protocol: 'tcp', port: 1, endPort: 100, verdict: 'allow' }], enf, {
        maxEntries: 50,
      }),
    ).toThrow(/more than 50 map entries/);
  });

  it('the compiled map decides every packet as the rules mean (property)', () => {
    const identity = fc.constantFrom(0, 400, 500);
    const rule: fc.Arbitrary<PolicyRule> = fc
      .record({
        peer: identity,
        direction: fc.constantFrom('ingress' as const, 'egress' as const),
        protocol: fc.constantFrom('any' as const, 'tcp' as const, 'udp' as const, 'icmp' as const),
        port: fc.option(fc.integer({ min: 20, max: 26 }), { nil: undefined }),
        span: fc.integer({ min: 0, max: 3 }),
        verdict: fc.constantFrom('allow' as const, 'deny' as const),
        level: fc.integer({ min: 0, max: 2 }),
      })
      .map((r) => {
        const ported = r.protocol === 'tcp' || r.protocol === 'udp';
        return {
          subject: 300,
          peer: r.peer,
          direction: r.direction,
          protocol: r.protocol,
          ...(ported && r.port !== undefined ? { port: r.port, ...(r.span ? { endPort: r.port + r.span } : {}) } : {}),
          verdict: r.verdict,
          ...(r.level === 1 ? { requireEncryption: true } : r.level === 2 ? { requireAuthenticatedIdentity: true } : {}),
        };
      });
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 8 }), fc.boolean(), fc.boolean(), (rules, ing, eg) => {
        const enf = [{ identity: 300, ingress: ing, egress: eg }];
        const map = asMap(compilePolicy(rules, enf));
        for (const direction of ['ingress', 'egress'] as const) {
          for (const peer of [400, 500, 600]) {
            for (const proto of [1, 6, 17]) {
              for (let port = 19; port <= 30; port += proto === 1 ? 100 : 1) {
                const q = { subject: 300, peer, direction, proto, port: proto === 1 ? 0 : port };
                expect(datapath(map, enf, q)).toEqual(semantics(rules, enf, q));
              }
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
