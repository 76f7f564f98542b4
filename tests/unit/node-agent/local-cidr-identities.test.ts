import { describe, expect, it } from 'vitest';
import { canonicalCidr } from '../../../agent/net/ip.js';
import { isLocalIdentity, LOCAL_IDENTITY_SCOPE, LocalCidrIdentities } from '../../../agent/node-agent/local-cidr-identities.js';

const c = (t: string) => canonicalCidr('prefix', t);
const first = LOCAL_IDENTITY_SCOPE + 1;

describe('node-local CIDR identities', () => {
  it('gives every prefix an identity in the node-local space and an LPM entry outside the pod network', () => {
    const ids = new LocalCidrIdentities();
    const plan = ids.plan([c('0.0.0.0/0'), c('10.244.1.128/25'), c('198.51.100.0/24'), c('198.51.100.20/32')], ['10.244.1.0/24', '10.244.2.0/24']);
    expect([...plan.identities]).toEqual([
      ['0.0.0.0/0', first],
      ['10.244.1.128/25', first + 1],
      ['198.51.100.0/24', first + 2],
      ['198.51.100.20/32', first + 3],
    ]);
    for (const id of plan.identities.values()) expect(isLocalIdentity(id)).toBe(true);
    // inside a pod CIDR: an identity (rules reference it) but no ipcache entry
    expect(plan.inPodNetwork).toEqual(['10.244.1.128/25']);
    expect([...plan.ipcache.keys()]).toEqual(['0.0.0.0/0', '198.51.100.0/24', '198.51.100.20/32']);
    expect(plan.ipcache.get('198.51.100.0/24')).toEqual({ identity: first + 2, nodeIndex: 0, keySlot: 0, flags: 0 });
    expect(ids.prefixOf(first + 2)).toBe('198.51.100.0/24');
  });

  it('keeps numbers stable across plans and never reuses a released one', () => {
    const ids = new LocalCidrIdentities();
    ids.plan([c('192.0.2.0/24'), c('198.51.100.0/24')], []);
    const second = ids.plan([c('198.51.100.0/24'), c('203.0.113.0/24')], []);
    expect(second.identities.get('198.51.100.0/24')).toBe(first + 1);
    expect(second.identities.get('203.0.113.0/24')).toBe(first + 2);
    expect(ids.prefixOf(first)).toBeUndefined();
    const third = ids.plan([c('192.0.2.0/24')], []);
    expect(third.identities.get('192.0.2.0/24')).toBe(first + 3);
  });

  it('adopts the numbers a previous agent left in the ipcache and continues after the highest', () => {
    const ids = new LocalCidrIdentities();
    const n = ids.adopt([
      ['198.51.100.0/24', { identity: first + 7, nodeIndex: 0, keySlot: 0, flags: 0 }],
      ['10.0.1.5/32', { identity: 300, nodeIndex: 0, keySlot: 0, flags: 3 }],
      ['10.244.2.0/24', { identity: 2, nodeIndex: 2, keySlot: 0, flags: 2, tunnelEndpoint: '192.168.1.2' }],
      ['fd00:ee::/64', { identity: first + 3, nodeIndex: 0, keySlot: 0, flags: 0 }],
    ]);
    expect(n).toBe(2);
    const plan = ids.plan([c('198.51.100.0/24'), c('fd00:ee::/64'), c('192.0.2.0/24')], []);
    expect(plan.identities.get('198.51.100.0/24')).toBe(first + 7);
    expect(plan.identities.get('fd00:ee::/64')).toBe(first + 3);
    expect(plan.identities.get('192.0.2.0/24')).toBe(first + 8);
  });

  it('is not a cluster or reserved identity', () => {
    expect(isLocalIdentity(LOCAL_IDENTITY_SCOPE)).toBe(false);
    expect(isLocalIdentity(65535)).toBe(false);
    expect(isLocalIdentity(2)).toBe(false);
    expect(isLocalIdentity(first)).toBe(true);
  });
});

describe('LocalCidrIdentities.compile', () => {
  it('turns a compilation with CIDR rules into policy entries on the prefixes\' identities (except carved out)', async () => {
    const { compilePolicies } = await import('../../../agent/policy/compiler.js');
    const { parsePolicies } = await import('../../../agent/policy/policy-file.js');
    const { canonicalLabelSet } = await import('../../../agent/identity/labels.js');
    const policy = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: p, namespace: default }
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{ ipBlock: { cidr: 198.51.100.0/24, except: [198.51.100.128/25] } }]
      ports: [{ protocol: TCP, port: 443 }]
`;
    const set = canonicalLabelSet({ namespace: 'default', serviceAccount: 'default', podLabels: { app: 'web' } });
    const ids = new LocalCidrIdentities();
    const { entries, plan } = ids.compile(compilePolicies(parsePolicies(policy), [[300, set]]), []);
    const block = plan.identities.get('198.51.100.0/24')!;
    const except = plan.identities.get('198.51.100.128/25')!;
    const peers = entries.filter((e) => e.key.subject === 300 && e.key.direction === 'egress' && e.value.verdict === 'allow').map((e) => [e.key.peer, e.key.proto, e.key.dport]);
    expect(peers).toContainEqual([block, 6, 443]);
    expect(peers.some(([p]) => p === except)).toBe(false);
    expect([...plan.ipcache.keys()]).toEqual(['198.51.100.0/24', '198.51.100.128/25']);
  });
});
