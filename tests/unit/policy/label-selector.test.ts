import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputReader } from '../../../agent/policy/input-reader.js';
import { parseLabelSelector, selectorMatches } from '../../../agent/policy/label-selector.js';

const reader = () => new InputReader({ source: 't', document: 1 });
const sel = (v: unknown) => parseLabelSelector(reader(), v, 'sel');
const labels = (o: Record<string, string>) => new Map(Object.entries(o));

describe('label selectors', () => {
  it('an empty or null selector matches everything', () => {
    expect(selectorMatches(sel({}), labels({}))).toBe(true);
    expect(selectorMatches(sel(null), labels({ a: 'b' }))).toBe(true);
  });

  it('ANDs matchLabels and matchExpressions', () => {
    const s = sel({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] });
    expect(selectorMatches(s, labels({ app: 'web' }))).toBe(true);
    expect(selectorMatches(s, labels({ app: 'web', env: 'dev' }))).toBe(true);
    expect(selectorMatches(s, labels({ app: 'web', env: 'prod' }))).toBe(false);
    expect(selectorMatches(s, labels({ env: 'dev' }))).toBe(false);
  });

  it('matchLabels { k: v } means the same as In [v], and empty values are values', () => {
    expect(sel({ matchLabels: { k: 'v' } }).key).toBe(sel({ matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }] }).key);
    expect(selectorMatches(sel({ matchLabels: { k: '' } }), labels({ k: '' }))).toBe(true);
    expect(selectorMatches(sel({ matchLabels: { k: '' } }), labels({}))).toBe(false);
  });

  it('agrees with the operator definitions on random label maps (property)', () => {
    const key = fc.constantFrom('a', 'b', 'c');
    const value = fc.constantFrom('x', 'y', 'z');
    fc.assert(
      fc.property(
        fc.dictionary(key, value),
        key,
        fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist'),
        fc.uniqueArray(value, { minLength: 1 }),
        (lab, k, op, values) => {
          const s = sel({ matchExpressions: [{ key: k, operator: op, ...(op === 'In' || op === 'NotIn' ? { values } : {}) }] });
          const v = Object.hasOwn(lab, k) ? lab[k] : undefined;
          const want = op === 'In' ? v !== undefined && values.includes(v) : op === 'NotIn' ? v === undefined || !values.includes(v) : op === 'Exists' ? v !== undefined : v === undefined;
          expect(selectorMatches(s, labels(lab))).toBe(want);
        },
      ),
    );
  });
});
