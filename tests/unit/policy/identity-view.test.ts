import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { canonicalLabelSet } from '../../../agent/identity/labels.js';
import { identityLabels, NAMESPACE_NAME_LABEL } from '../../../agent/policy/identity-view.js';

describe('identityLabels()', () => {
  it('splits pod and namespace labels and adds the namespace name label', () => {
    const set = canonicalLabelSet({ namespace: 'shop', serviceAccount: 'web', podLabels: { app: 'web', team: 'p' }, namespaceLabels: { team: 'n' } });
    const v = identityLabels(300, set);
    expect(v.namespace).toBe('shop');
    expect([...v.podLabels]).toEqual([['app', 'web'], ['team', 'p']]);
    expect([...v.namespaceLabels]).toEqual([['team', 'n'], [NAMESPACE_NAME_LABEL, 'shop']]);
  });

  it('refuses reserved ids and a namespace name label that contradicts the namespace', () => {
    const set = canonicalLabelSet({ namespace: 'shop', serviceAccount: 'web' });
    expect(() => identityLabels(1, set)).toThrow(ValidationError);
    const bad = canonicalLabelSet({ namespace: 'shop', serviceAccount: 'web', namespaceLabels: { [NAMESPACE_NAME_LABEL]: 'other' } });
    expect(() => identityLabels(300, bad)).toThrow(/kubernetes.io\/metadata.name="other" but is in namespace "shop"/);
  });
});
