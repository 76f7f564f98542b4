import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalLabelSet,
  MAX_LABELS,
  parseCanonicalLabelSet,
  VOLATILE_LABEL_KEYS,
  workloadOf,
} from '../../../agent/identity/labels.js';
import { validationError } from '../../support/validation-error.js';

const base = { namespace: 'shop', serviceAccount: 'web' };

describe('canonicalLabelSet()', () => {
  it('is independent of label order and hashes the canonical form with SHA-256', () => {
    const a = canonicalLabelSet({ ...base, podLabels: { app: 'web', tier: 'front' }, namespaceLabels: { team: 'a' } });
    const b = canonicalLabelSet({ ...base, namespaceLabels: { team: 'a' }, podLabels: { tier: 'front', app: 'web' } });
    expect(a.canonical).toBe(b.canonical);
    expect(a.hash).toBe(b.hash);
    expect(a.canonical).toBe(
      '[["k8s:app","web"],["k8s:tier","front"],["ns:team","a"],["veil:namespace","shop"],["veil:service-account","web"]]',
    );
    expect(a.hash).toBe(createHash('sha256').update(a.canonical).digest('hex'));
    expect(workloadOf(a)).toEqual({ namespace: 'shop', serviceAccount: 'web' });
  });

  it('drops every volatile label so pods of one workload share an identity', () => {
    const volatile = Object.fromEntries([...VOLATILE_LABEL_KEYS].map((k) => [k, 'x1']));
    const a = canonicalLabelSet({ ...base, podLabels: { app: 'web', ...volatile }, namespaceLabels: volatile });
    const b = canonicalLabelSet({ ...base, podLabels: { app: 'web', 'pod-template-hash': 'other' } });
    expect(a.hash).toBe(b.hash);
    expect(a.entries.map((e) => e[0])).toEqual(['k8s:app', 'veil:namespace', 'veil:service-account']);
    expect(VOLATILE_LABEL_KEYS.has('pod-template-hash')).toBe(true);
    expect(VOLATILE_LABEL_KEYS.has('statefulset.kubernetes.io/pod-name')).toBe(true);
  });

  it('keeps pod labels and namespace labels of the same key apart', () => {
    const a = canonicalLabelSet({ ...base, podLabels: { team: 'a' } });
    const b = canonicalLabelSet({ ...base, namespaceLabels: { team: 'a' } });
    expect(a.hash).not.toBe(b.hash);
  });

  it('distinguishes different namespaces, service accounts and values', () => {
    const hashes = new Set([
      canonicalLabelSet(base).hash,
      canonicalLabelSet({ ...base, namespace: 'shop2' }).hash,
      canonicalLabelSet({ ...base, serviceAccount: 'web2' }).hash,
      canonicalLabelSet({ ...base, podLabels: { app: '' } }).hash,
      canonicalLabelSet({ ...base, podLabels: { app: 'a' } }).hash,
    ]);
    expect(hashes.size).toBe(5);
  });

  it('accepts the Kubernetes bounds: 253-character prefix, 63-character name and value', () => {
    const prefix = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    expect(prefix.length).toBe(253);
    const set = canonicalLabelSet({ ...base, podLabels: { [`${prefix}/${'n'.repeat(63)}`]: 'v'.repeat(63) } });
    expect(set.entries).toHaveLength(3);
  });

  it.each([
    ['namespace', { ...base, namespace: 'Shop' }],
    ['namespace', { ...base, namespace: 'a'.repeat(64) }],
    ['serviceAccount', { ...base, serviceAccount: '' }],
    ['podLabels', { ...base, podLabels: { ['n'.repeat(64)]: 'v' } }],
    ['podLabels', { ...base, podLabels: { [`${'p'.repeat(254)}/n`]: 'v' } }],
    ['podLabels', { ...base, podLabels: { '/n': 'v' } }],
    ['podLabels', { ...base, podLabels: { 'a:b': 'v' } }],
    ['podLabels', { ...base, podLabels: { app: 'v'.repeat(64) } }],
    ['podLabels', { ...base, podLabels: { app: '-bad' } }],
    ['podLabels', { ...base, podLabels: { app: 7 as unknown as string } }],
    ['namespaceLabels', { ...base, namespaceLabels: ['x'] as unknown as Record<string, string> }],
  ])('rejects invalid %s with a ValidationError naming it', (field, input) => {
    const err = validationError(() => canonicalLabelSet(input));
    expect(err.field).toBe(field);
    expect(err.message).toMatch(/^[A-Z].*[^.]$/);
  });

  it('rejects more than MAX_LABELS labels as an oversized label set', () => {
    const many = Object.fromEntries(Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`l${i}`, 'v']));
    const err = validationError(() => canonicalLabelSet({ ...base, podLabels: many }));
    expect(err.message).toContain('oversized label set');
    // Exactly MAX_LABELS is fine, and volatile labels do not count.
    const ok = Object.fromEntries(Array.from({ length: MAX_LABELS }, (_, i) => [`l${i}`, 'v']));
    expect(canonicalLabelSet({ ...base, podLabels: { ...ok, 'pod-template-hash': 'x' } }).entries).toHaveLength(MAX_LABELS + 2);
  });

  it('rejects a label set over the byte bound as oversized', () => {
    const prefix = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    const big = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`${prefix}/k${i}`, 'v'.repeat(63)]));
    expect(validationError(() => canonicalLabelSet({ ...base, podLabels: big })).message).toContain('oversized label set');
  });

  it('rejects a hostile input object with a huge number of keys before looking at them', () => {
    const huge = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`l${i}`, 'v']));
    expect(validationError(() => canonicalLabelSet({ ...base, podLabels: huge })).message).toContain('oversized label set');
  });
});

describe('parseCanonicalLabelSet()', () => {
  const set = canonicalLabelSet({ ...base, podLabels: { app: 'web' } });

  it('round-trips a canonical form and checks its hash', () => {
    expect(parseCanonicalLabelSet(set.canonical, set.hash)).toEqual(set);
    expect(validationError(() => parseCanonicalLabelSet(set.canonical, 'f'.repeat(64))).message).toContain('hashes to');
  });

  it.each([
    ['not JSON', '[["k8s:app"'],
    ['not an array', '{}'],
    ['not pairs', '[["k8s:app"]]'],
    ['unknown source', '[["x:app","web"],["veil:namespace","shop"],["veil:service-account","web"]]'],
    ['unsorted', '[["veil:service-account","web"],["veil:namespace","shop"]]'],
    ['duplicated', '[["k8s:a","1"],["k8s:a","1"],["veil:namespace","shop"],["veil:service-account","web"]]'],
    ['missing namespace', '[["veil:service-account","web"]]'],
    ['volatile', '[["k8s:pod-template-hash","x"],["veil:namespace","shop"],["veil:service-account","web"]]'],
    ['re-formatted', '[ ["veil:namespace","shop"],["veil:service-account","web"]]'],
    ['not a string', 42],
  ])('rejects a hostile canonical form (%s)', (_name, input) => {
    validationError(() => parseCanonicalLabelSet(input));
  });
});
