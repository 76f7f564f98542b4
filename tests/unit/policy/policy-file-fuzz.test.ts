/**
 * Garbage, truncated and mutated input: parsePolicies() returns policies or throws a
 * PolicyInputError — never another exception, never a hang.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { PolicyInputError } from '../../../agent/policy/errors.js';
import { parsePolicies } from '../../../agent/policy/policy-file.js';
import { np } from './policy-fixture.js';

function outcome(text: string): 'ok' | 'refused' {
  try {
    parsePolicies(text, { source: 'fuzz' });
    return 'ok';
  } catch (err) {
    if (err instanceof PolicyInputError) return 'refused';
    throw err;
  }
}

const VALID = np(
  'fuzz',
  'shop',
  `podSelector: {matchLabels: {app: db}}
policyTypes: [Ingress, Egress]
ingress:
- from:
  - namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [a, b]}]}
    podSelector: {matchLabels: {app: web}}
  - ipBlock: {cidr: "fd00::/64", except: ["fd00::/96"]}
  ports: [{port: 5432}, {protocol: UDP, port: 53, endPort: 60}]
egress:
- to: [{ipBlock: {cidr: 10.0.0.0/8}}]`,
  { 'policy.veil.dev/require-ingress.0': 'encrypted' },
);

describe('parsePolicies() on hostile input (property)', () => {
  it('the valid base document parses', () => {
    expect(outcome(VALID)).toBe('ok');
  });

  it('every truncation of a valid document is parsed or refused', () => {
    for (let i = 0; i < VALID.length; i++) outcome(VALID.slice(0, i));
  });

  it('arbitrary JSON values are refused cleanly', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(['ok', 'refused']).toContain(outcome(JSON.stringify(v) ?? 'null'));
      }),
      { numRuns: 500 },
    );
  });

  it('random text is refused cleanly', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'{}[]:-,&*!|>\'"#% \n\tabc0123.:/'.split('')), maxLength: 200 }), (s) => {
        expect(['ok', 'refused']).toContain(outcome(s));
      }),
      { numRuns: 1000 },
    );
  });

  it('a valid policy with one field replaced by anything is parsed or refused', () => {
    const base: unknown = YAML.parse(VALID);
    const paths = collectPaths(base);
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, value) => {
        const copy = JSON.parse(JSON.stringify(base)) as Record<string | number, any>;
        let obj = copy;
        for (const k of path.slice(0, -1)) obj = obj[k];
        obj[path[path.length - 1]!] = value;
        expect(['ok', 'refused']).toContain(outcome(JSON.stringify(copy)));
      }),
      { numRuns: 1000 },
    );
  });
});

function collectPaths(v: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (v === null || typeof v !== 'object') return [prefix];
  const out: Array<Array<string | number>> = prefix.length ? [prefix] : [];
  for (const [k, c] of Object.entries(v)) out.push(...collectPaths(c, [...prefix, Array.isArray(v) ? Number(k) : k]));
  return out;
}
