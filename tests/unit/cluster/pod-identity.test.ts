import { describe, expect, it } from 'vitest';
import { podLabelSet } from '../../../agent/cluster/pod-identity.js';
import { canonicalLabelSet } from '../../../agent/identity/labels.js';

describe('podLabelSet', () => {
  const pod = { namespace: 'shop', serviceAccount: 'web', labels: { app: 'web', 'pod-template-hash': 'abc' } };

  it('is the canonical label set of namespace, service account, pod and namespace labels', () => {
    const ns = new Map([['shop', { team: 'a' }]]);
    expect(podLabelSet(pod, ns).hash).toBe(canonicalLabelSet({ namespace: 'shop', serviceAccount: 'web', podLabels: pod.labels, namespaceLabels: { team: 'a' } }).hash);
  });

  it('ignores volatile labels, so replicas share one label set', () => {
    const ns = new Map<string, Record<string, string>>();
    expect(podLabelSet(pod, ns).hash).toBe(podLabelSet({ ...pod, labels: { app: 'web', 'pod-template-hash': 'xyz' } }, ns).hash);
  });

  it('changes when the namespace gets labels', () => {
    expect(podLabelSet(pod, new Map()).hash).not.toBe(podLabelSet(pod, new Map([['shop', { team: 'a' }]])).hash);
  });
});
