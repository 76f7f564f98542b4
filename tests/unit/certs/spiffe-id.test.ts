import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { SpiffeIdError } from '../../../certs/errors.js';
import { parseSpiffeId, parseWorkloadId, workloadSpiffeId } from '../../../certs/spiffe-id.js';

describe('SPIFFE IDs', () => {
  it('workloadSpiffeId() builds spiffe://<td>/ns/<ns>/sa/<sa>', () => {
    expect(workloadSpiffeId('cluster.local', 'default', 'web')).toBe('spiffe://cluster.local/ns/default/sa/web');
  });

  it('workloadSpiffeId() refuses names Kubernetes would refuse, naming the field', () => {
    expect(() => workloadSpiffeId('cluster.local', 'Default', 'web')).toThrow(ValidationError);
    expect(() => workloadSpiffeId('cluster.local', 'default', 'we/b')).toThrow(/service account "we\/b"/);
    expect(() => workloadSpiffeId('Cluster.Local', 'default', 'web')).toThrow(/trust domain "Cluster.Local"/);
    expect(() => workloadSpiffeId('cluster.local', 'a'.repeat(64), 'web')).toThrow(ValidationError);
  });

  it('parseWorkloadId() accepts exactly the workload shape in the expected trust domain', () => {
    expect(parseWorkloadId('spiffe://cluster.local/ns/kube-system/sa/coredns', 'cluster.local')).toEqual({
      spiffeId: 'spiffe://cluster.local/ns/kube-system/sa/coredns',
      trustDomain: 'cluster.local',
      namespace: 'kube-system',
      serviceAccount: 'coredns',
    });
  });

  it.each([
    ['spiffe://other.org/ns/default/sa/web', /trust domain "other.org"/],
    ['SPIFFE://cluster.local/ns/default/sa/web', /scheme/],
    ['https://cluster.local/ns/default/sa/web', /scheme/],
    ['spiffe://cluster.local', /workload shape/],
    ['spiffe://cluster.local/ns/default', /workload shape/],
    ['spiffe://cluster.local/ns/default/sa/web/extra', /workload shape/],
    ['spiffe://cluster.local/ns/default/sa/web/', /path segment ""/],
    ['spiffe://cluster.local/ns/../sa/web', /path segment "\.\."/],
    ['spiffe://cluster.local:443/ns/default/sa/web', /invalid trust domain/],
    ['spiffe://user@cluster.local/ns/default/sa/web', /invalid trust domain/],
    ['spiffe://cluster.local/ns/default/sa/web?x=1', /path segment/],
    ['spiffe://cluster.local/ns/Default/sa/web', /workload shape/],
  ])('parseWorkloadId() rejects %s', (uri, message) => {
    expect(() => parseWorkloadId(uri, 'cluster.local')).toThrow(SpiffeIdError);
    expect(() => parseWorkloadId(uri, 'cluster.local')).toThrow(message);
  });

  it('parseSpiffeId() bounds the length', () => {
    expect(() => parseSpiffeId(`spiffe://td/${'a'.repeat(3000)}`)).toThrow(/longer than 2048/);
  });
});
