import { describe, expect, it } from 'vitest';
import { PolicyInputError } from '../../../agent/policy/errors.js';
import { REQUIRE_ENCRYPTED, REQUIRE_IDENTITY_BOUND, REQUIRE_NONE, requirementFlags, requirementLevel } from '../../../agent/policy/requirements.js';
import { np, policies } from './policy-fixture.js';

const SPEC = 'podSelector: {}\ningress: [{}, {}]\negress: [{}]';
const read = (annotations: Record<string, string>) => policies(np('p', 'shop', SPEC, annotations))[0]!;

function failure(annotations: Record<string, string>): PolicyInputError {
  try {
    read(annotations);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyInputError);
    return err as PolicyInputError;
  }
  throw new Error('Expected a PolicyInputError');
}

describe('policy.veil.dev/ requirement annotations', () => {
  it('apply per rule and per direction; the stricter wins; identity-bound implies encrypted', () => {
    const p = read({
      'policy.veil.dev/require-ingress.1': 'encrypted',
      'policy.veil.dev/require-egress': 'identity-bound',
      'other.example.com/ignored': 'anything',
    });
    expect(p.ingress!.map((r) => r.requirement)).toEqual([REQUIRE_NONE, REQUIRE_ENCRYPTED]);
    expect(p.egress!.map((r) => r.requirement)).toEqual([REQUIRE_IDENTITY_BOUND]);
    const both = read({ 'policy.veil.dev/require-ingress': 'encrypted', 'policy.veil.dev/require-ingress.0': ' encrypted , identity-bound ' });
    expect(both.ingress!.map((r) => r.requirement)).toEqual([REQUIRE_IDENTITY_BOUND, REQUIRE_ENCRYPTED]);
  });

  it('maps levels to the rule flags and back', () => {
    expect(requirementFlags(REQUIRE_NONE)).toEqual({});
    expect(requirementFlags(REQUIRE_ENCRYPTED)).toEqual({ requireEncryption: true });
    expect(requirementFlags(REQUIRE_IDENTITY_BOUND)).toEqual({ requireEncryption: true, requireAuthenticatedIdentity: true });
    for (const l of [REQUIRE_NONE, REQUIRE_ENCRYPTED, REQUIRE_IDENTITY_BOUND]) expect(requirementLevel(requirementFlags(l))).toBe(l);
  });

  it.each([
    [{ 'policy.veil.dev/require-ingres.0': 'encrypted' }, /is not a Veil policy annotation/],
    [{ 'policy.veil.dev/require-ingress.2': 'encrypted' }, /rule index 2 does not exist: spec.ingress has 2 rule/],
    [{ 'policy.veil.dev/require-ingress.01': 'encrypted' }, /is not a Veil policy annotation/],
    [{ 'policy.veil.dev/require-ingress.0': 'encrypt' }, /requirement "encrypt" is unknown/],
    [{ 'policy.veil.dev/require-ingress.0': '' }, /requirement "" is unknown/],
    [{ 'policy.veil.dev/require-ingress.0': 'encrypted,,identity-bound' }, /requirement "" is unknown/],
    [{ 'policy.veil.dev/require-ingress.0': 'encrypted,encrypted' }, /listed twice/],
    [{ 'policy.veil.dev/require-egress.0': 'Encrypted' }, /unknown/],
    [{ 'policy.veil.dev/require-egress.0': 'constructor' }, /requirement "constructor" is unknown/],
  ])('refuses %j', (annotations, message) => {
    const e = failure(annotations as Record<string, string>);
    expect(e.message).toMatch(message);
    expect(e.path).toBe(`metadata.annotations[${JSON.stringify(Object.keys(annotations)[0])}]`);
  });

  it('refuses a requirement for a direction without rules', () => {
    const e = (() => {
      try {
        policies(np('p', 'shop', 'podSelector: {}', { 'policy.veil.dev/require-egress': 'encrypted' }));
      } catch (err) {
        return err as PolicyInputError;
      }
      throw new Error('Expected an error');
    })();
    expect(e.message).toMatch(/has no egress rules/);
  });
});
