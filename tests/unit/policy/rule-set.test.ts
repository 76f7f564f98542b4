import { describe, expect, it } from 'vitest';
import { normalizeRules, ruleCovers } from '../../../agent/policy/rule-set.js';
import type { PolicyRule } from '../../../agent/policy/rule.js';

const r = (peer: number, extra: Partial<PolicyRule> = {}): PolicyRule => ({ subject: 300, peer, direction: 'ingress', protocol: 'any', verdict: 'allow', ...extra });
const ENC = { requireEncryption: true } as const;
const ID = { requireEncryption: true, requireAuthenticatedIdentity: true } as const;

describe('ruleCovers()', () => {
  it('compares peer, protocol and port range', () => {
    expect(ruleCovers(r(0), r(5, { protocol: 'tcp', port: 80 }))).toBe(true);
    expect(ruleCovers(r(5), r(0))).toBe(false);
    expect(ruleCovers(r(5, { protocol: 'tcp' }), r(5, { protocol: 'tcp', port: 80, endPort: 90 }))).toBe(true);
    expect(ruleCovers(r(5, { protocol: 'tcp', port: 80, endPort: 90 }), r(5, { protocol: 'tcp', port: 85, endPort: 95 }))).toBe(false);
    expect(ruleCovers(r(5, { protocol: 'udp' }), r(5, { protocol: 'tcp', port: 80 }))).toBe(false);
  });
});

describe('normalizeRules()', () => {
  it('merges duplicates keeping the weaker requirement', () => {
    expect(normalizeRules([r(5, { protocol: 'tcp', port: 80, ...ID }), r(5, { protocol: 'tcp', port: 80, ...ENC })])).toEqual([r(5, { protocol: 'tcp', port: 80, ...ENC })]);
  });

  it('folds a covering rule\'s weaker requirement down and keeps partial overlaps as they are', () => {
    const out = normalizeRules([
      r(5, { protocol: 'tcp', port: 80, ...ID }),
      r(5, { protocol: 'tcp', port: 70, endPort: 90, ...ENC }),
      r(5, { protocol: 'tcp', port: 85, endPort: 95 }),
    ]);
    // tcp/80 is covered by 70-90 (encrypted), which is no stronger: the specific rule goes.
    expect(out).toEqual([r(5, { protocol: 'tcp', port: 70, endPort: 90, ...ENC }), r(5, { protocol: 'tcp', port: 85, endPort: 95 })]);
  });

  it('a specific rule with a stronger requirement under an any-peer rule without one is dropped', () => {
    expect(normalizeRules([r(0, { protocol: 'tcp' }), r(5, { protocol: 'tcp', port: 443, ...ENC })])).toEqual([r(0, { protocol: 'tcp' })]);
  });

  it('a specific rule with a weaker requirement than a covering rule stays', () => {
    const rules = [r(0, { ...ENC }), r(5, { protocol: 'tcp', port: 443 })];
    expect(normalizeRules(rules)).toEqual(rules);
  });

  it('keeps subjects and directions apart, passes deny rules through and sorts', () => {
    const deny: PolicyRule = { ...r(7), verdict: 'deny' };
    const out = normalizeRules([r(0, { subject: 302, ...ENC }), r(5, { subject: 301 }), r(5, { direction: 'egress' }), deny, r(5)]);
    expect(out).toEqual([r(5), deny, r(5, { direction: 'egress' }), r(5, { subject: 301 }), r(0, { subject: 302, ...ENC })]);
  });
});
