import { describe, expect, it } from 'vitest';
import { PolicyCompiler } from '../../../agent/policy/compiler.js';
import type { PolicyRule } from '../../../agent/policy/rule.js';
import { compile, labelSet, np, policies, type Pod } from './policy-fixture.js';

// A small cluster: namespace "shop" (team=a) with web, db, cache; namespace "ops" (team=b) with
// monitor; namespace "dev" (team=a) with web.
const WEB = 300, DB = 301, CACHE = 302, MON = 303, DEVWEB = 304;
const pods: Pod[] = [
  { id: WEB, namespace: 'shop', labels: { app: 'web', tier: 'front' }, namespaceLabels: { team: 'a' } },
  { id: DB, namespace: 'shop', labels: { app: 'db', tier: 'back' }, namespaceLabels: { team: 'a' } },
  { id: CACHE, namespace: 'shop', labels: { app: 'cache', tier: 'back' }, namespaceLabels: { team: 'a' } },
  { id: MON, namespace: 'ops', labels: { app: 'monitor' }, namespaceLabels: { team: 'b' } },
  { id: DEVWEB, namespace: 'dev', labels: { app: 'web' }, namespaceLabels: { team: 'a' } },
];
const HOST = 1;

function allow(subject: number, peer: number, direction: 'ingress' | 'egress', extra: Partial<PolicyRule> = {}): PolicyRule {
  return { subject, peer, direction, protocol: 'any', verdict: 'allow', ...extra };
}

describe('PolicyCompiler semantics (Kubernetes NetworkPolicy documentation cases)', () => {
  it('default deny ingress isolates every pod of the namespace and allows only the local host', () => {
    const out = compile(np('default-deny-ingress', 'shop', 'podSelector: {}\npolicyTypes: [Ingress]'), pods);
    expect(out.enforcement).toEqual([
      { identity: WEB, ingress: true, egress: false },
      { identity: DB, ingress: true, egress: false },
      { identity: CACHE, ingress: true, egress: false },
    ]);
    expect(out.rules).toEqual([allow(WEB, HOST, 'ingress'), allow(DB, HOST, 'ingress'), allow(CACHE, HOST, 'ingress')]);
    expect(out.cidrRules).toEqual([]);
  });

  it('a policy without policyTypes and without egress defaults to Ingress only', () => {
    const out = compile(np('p', 'shop', 'podSelector: {matchLabels: {app: db}}'), pods);
    expect(out.enforcement).toEqual([{ identity: DB, ingress: true, egress: false }]);
  });

  it('a policy without policyTypes but with egress rules defaults to Ingress and Egress', () => {
    const out = compile(np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\negress:\n- {}'), pods);
    expect(out.enforcement).toEqual([{ identity: DB, ingress: true, egress: true }]);
    expect(out.rules).toEqual([allow(DB, HOST, 'ingress'), allow(DB, 0, 'egress')]);
  });

  it('allow all ingress: one empty rule allows every peer on every port', () => {
    const out = compile(np('allow-all', 'shop', 'podSelector: {}\ningress:\n- {}\npolicyTypes: [Ingress]'), pods);
    expect(out.enforcement.map((e) => e.identity)).toEqual([WEB, DB, CACHE]);
    // The host rule is covered by the any-peer rule and dropped as redundant.
    expect(out.rules).toEqual([allow(WEB, 0, 'ingress'), allow(DB, 0, 'ingress'), allow(CACHE, 0, 'ingress')]);
  });

  it('allow all egress: policyTypes Egress with one empty rule', () => {
    const out = compile(np('allow-all-egress', 'shop', 'podSelector: {}\negress:\n- {}\npolicyTypes: [Egress]'), pods);
    expect(out.enforcement).toEqual([WEB, DB, CACHE].map((identity) => ({ identity, ingress: false, egress: true })));
    expect(out.rules).toEqual([allow(WEB, 0, 'egress'), allow(DB, 0, 'egress'), allow(CACHE, 0, 'egress')]);
  });

  it('the documentation example test-network-policy: ipBlock, namespace and pod peers, ingress and egress', () => {
    const out = compile(
      np('test-network-policy', 'shop', `podSelector: {matchLabels: {app: db}}
policyTypes: [Ingress, Egress]
ingress:
- from:
  - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
  - namespaceSelector: {matchLabels: {team: b}}
  - podSelector: {matchLabels: {tier: front}}
  ports: [{protocol: TCP, port: 6379}]
egress:
- to: [{ipBlock: {cidr: 10.0.0.0/24}}]
  ports: [{protocol: TCP, port: 5978}]`),
      pods,
    );
    expect(out.enforcement).toEqual([{ identity: DB, ingress: true, egress: true }]);
    expect(out.rules).toEqual([
      allow(DB, HOST, 'ingress'),
      allow(DB, WEB, 'ingress', { protocol: 'tcp', port: 6379 }),
      allow(DB, MON, 'ingress', { protocol: 'tcp', port: 6379 }),
      allow(DB, HOST, 'egress'),
    ]);
    expect(out.cidrRules).toEqual([
      { subject: DB, direction: 'ingress', cidr: { addr: '172.17.0.0', prefixLen: 16, family: 4 }, except: [{ addr: '172.17.1.0', prefixLen: 24, family: 4 }], protocol: 'tcp', port: 6379, verdict: 'allow' },
      { subject: DB, direction: 'egress', cidr: { addr: '10.0.0.0', prefixLen: 24, family: 4 }, except: [], protocol: 'tcp', port: 5978, verdict: 'allow' },
    ]);
  });

  it('default deny egress and default deny all', () => {
    const e = compile(np('deny-egress', 'shop', 'podSelector: {}\npolicyTypes: [Egress]'), pods);
    expect(e.enforcement).toEqual([WEB, DB, CACHE].map((identity) => ({ identity, ingress: false, egress: true })));
    expect(e.rules).toEqual([allow(WEB, HOST, 'egress'), allow(DB, HOST, 'egress'), allow(CACHE, HOST, 'egress')]);
    const all = compile(np('deny-all', 'shop', 'podSelector: {}\npolicyTypes: [Ingress, Egress]'), pods);
    expect(all.enforcement).toEqual([WEB, DB, CACHE].map((identity) => ({ identity, ingress: true, egress: true })));
  });

  it('podSelector peer selects pods of the policy namespace only', () => {
    const out = compile(np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: web}}}]'), pods);
    expect(out.rules.filter((r) => r.peer !== HOST)).toEqual([allow(DB, WEB, 'ingress')]); // not DEVWEB (namespace dev)
  });

  it('namespaceSelector peer selects every pod of matching namespaces', () => {
    const out = compile(np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{namespaceSelector: {matchLabels: {team: a}}}]'), pods);
    expect(out.rules.filter((r) => r.peer !== HOST).map((r) => r.peer)).toEqual([WEB, DB, CACHE, DEVWEB]);
  });

  it('namespaceSelector and podSelector in one peer are ANDed', () => {
    const out = compile(
      np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: a}}\n    podSelector: {matchLabels: {app: web}}'),
      pods,
    );
    expect(out.rules.filter((r) => r.peer !== HOST).map((r) => r.peer)).toEqual([WEB, DEVWEB]);
  });

  it('namespaceSelector and podSelector as two peers are ORed', () => {
    const out = compile(
      np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: b}}\n  - podSelector: {matchLabels: {app: web}}'),
      pods,
    );
    expect(out.rules.filter((r) => r.peer !== HOST).map((r) => r.peer)).toEqual([WEB, MON]);
  });

  it('the kubernetes.io/metadata.name namespace label is always there', () => {
    const out = compile(
      np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}}]'),
      pods,
    );
    expect(out.rules.filter((r) => r.peer !== HOST).map((r) => r.peer)).toEqual([MON]);
  });

  it('matchExpressions In, NotIn, Exists and DoesNotExist', () => {
    const peers = (expr: string) =>
      compile(np('p', 'shop', `podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{namespaceSelector: {}, podSelector: {matchExpressions: [${expr}]}}]`), pods)
        .rules.filter((r) => r.peer !== HOST)
        .map((r) => r.peer);
    expect(peers('{key: app, operator: In, values: [web, monitor]}')).toEqual([WEB, MON, DEVWEB]);
    expect(peers('{key: app, operator: NotIn, values: [web]}')).toEqual([DB, CACHE, MON]);
    expect(peers('{key: tier, operator: Exists}')).toEqual([WEB, DB, CACHE]);
    expect(peers('{key: tier, operator: DoesNotExist}')).toEqual([MON, DEVWEB]);
  });

  it('ports: TCP by default, UDP and SCTP, a port range with endPort, and a protocol without port', () => {
    const out = compile(
      np('p', 'shop', `podSelector: {matchLabels: {app: db}}
ingress:
- from: [{podSelector: {matchLabels: {app: web}}}]
  ports:
  - port: 5432
  - {protocol: UDP, port: 53}
  - {protocol: SCTP, port: 9000, endPort: 9100}
  - {protocol: UDP}`),
      pods,
    );
    expect(out.rules.filter((r) => r.peer !== HOST)).toEqual([
      allow(DB, WEB, 'ingress', { protocol: 'sctp', port: 9000, endPort: 9100 }),
      allow(DB, WEB, 'ingress', { protocol: 'tcp', port: 5432 }),
      allow(DB, WEB, 'ingress', { protocol: 'udp' }), // covers udp/53, which is dropped
    ]);
  });

  it('egress rules with to-peers and ports', () => {
    const out = compile(np('p', 'shop', 'podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress:\n- to: [{podSelector: {matchLabels: {app: db}}}]\n  ports: [{port: 5432}]'), pods);
    expect(out.enforcement).toEqual([{ identity: WEB, ingress: false, egress: true }]);
    expect(out.rules).toEqual([allow(WEB, HOST, 'egress'), allow(WEB, DB, 'egress', { protocol: 'tcp', port: 5432 })]);
  });

  it('several policies selecting one pod allow the union of their rules', () => {
    const out = compile(
      np('a', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: web}}}]\n  ports: [{port: 5432}]') +
        np('b', 'shop', 'podSelector: {matchLabels: {tier: back}}\ningress:\n- from: [{namespaceSelector: {matchLabels: {team: b}}}]'),
      pods,
    );
    expect(out.enforcement).toEqual([
      { identity: DB, ingress: true, egress: false },
      { identity: CACHE, ingress: true, egress: false },
    ]);
    expect(out.rules.filter((r) => r.peer !== HOST)).toEqual([
      allow(DB, WEB, 'ingress', { protocol: 'tcp', port: 5432 }),
      allow(DB, MON, 'ingress'),
      allow(CACHE, MON, 'ingress'),
    ]);
  });

  it('a selector matching no pod still isolates the subjects', () => {
    const out = compile(np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: nothing}}}]'), pods);
    expect(out.enforcement).toEqual([{ identity: DB, ingress: true, egress: false }]);
    expect(out.rules).toEqual([allow(DB, HOST, 'ingress')]);
  });

  it('ipBlock peers become CIDR rules, IPv4 and IPv6, with except', () => {
    const out = compile(
      np('p', 'shop', `podSelector: {matchLabels: {app: web}}
policyTypes: [Egress]
egress:
- to:
  - ipBlock: {cidr: 10.0.0.0/8, except: [10.2.0.0/16, 10.1.0.0/16]}
  - ipBlock: {cidr: "fd00::/64"}
  ports: [{port: 443}]`),
      pods,
    );
    expect(out.cidrRules).toEqual([
      { subject: WEB, direction: 'egress', cidr: { addr: '10.0.0.0', prefixLen: 8, family: 4 }, except: [{ addr: '10.1.0.0', prefixLen: 16, family: 4 }, { addr: '10.2.0.0', prefixLen: 16, family: 4 }], protocol: 'tcp', port: 443, verdict: 'allow' },
      { subject: WEB, direction: 'egress', cidr: { addr: 'fd00::', prefixLen: 64, family: 6 }, except: [], protocol: 'tcp', port: 443, verdict: 'allow' },
    ]);
    expect(out.rules).toEqual([allow(WEB, HOST, 'egress')]);
  });

  it('Veil requirements reach the rules, and a general rule without requirement weakens a covered one', () => {
    const out = compile(
      np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: web}}}]\n  ports: [{port: 5432}]\n- from: [{podSelector: {matchLabels: {app: cache}}}]', {
        'policy.veil.dev/require-ingress': 'identity-bound',
      }),
      pods,
    );
    expect(out.rules.filter((r) => r.peer !== HOST)).toEqual([
      allow(DB, WEB, 'ingress', { protocol: 'tcp', port: 5432, requireEncryption: true, requireAuthenticatedIdentity: true }),
      allow(DB, CACHE, 'ingress', { requireEncryption: true, requireAuthenticatedIdentity: true }),
    ]);
    const weaker = compile(
      np('p', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: web}}}]\n  ports: [{port: 5432}]', { 'policy.veil.dev/require-ingress.0': 'encrypted' }) +
        np('q', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: web}}}]\n  ports: [{port: 5000, endPort: 6000}]'),
      pods,
    );
    // tcp/5432 from web is allowed without encryption by policy q: the specific rule is redundant.
    expect(weaker.rules.filter((r) => r.peer !== HOST)).toEqual([allow(DB, WEB, 'ingress', { protocol: 'tcp', port: 5000, endPort: 6000 })]);
  });
});

describe('PolicyCompiler options', () => {
  it('uses the given host identity for the node exception and refuses a bad one', () => {
    const c = new PolicyCompiler({ hostIdentity: 6 });
    c.setIdentity(DB, labelSet(pods[1]!));
    c.setPolicy(policies(np('p', 'shop', 'podSelector: {}'))[0]!);
    expect(c.compile().rules).toEqual([allow(DB, 6, 'ingress')]);
    expect(() => new PolicyCompiler({ hostIdentity: 0 })).toThrow(/Host identity 0 is invalid/);
    expect(() => new PolicyCompiler({ hostIdentity: 1.5 })).toThrow(/Host identity 1.5 is invalid/);
  });
});

describe('PolicyCompiler incremental updates', () => {
  it('follows identities and policies as they come and go, same result as a fresh compile', () => {
    const yaml =
      np('a', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: web}}}]') +
      np('b', 'shop', 'podSelector: {}\npolicyTypes: [Egress]\negress:\n- to: [{namespaceSelector: {matchLabels: {team: b}}}]');
    const [a, b] = policies(yaml) as [ReturnType<typeof policies>[0], ReturnType<typeof policies>[0]];
    const c = new PolicyCompiler();
    c.setPolicy(a);
    for (const p of pods.slice(0, 3)) c.setIdentity(p.id, labelSet(p));
    const first = c.compile();
    expect(first.rules.filter((r) => r.peer !== HOST)).toEqual([allow(DB, WEB, 'ingress')]);
    expect(c.compile()).toBe(first); // cached

    c.setPolicy(b);
    c.setIdentity(MON, labelSet(pods[3]!));
    const fresh = new PolicyCompiler();
    for (const p of pods.slice(0, 4)) fresh.setIdentity(p.id, labelSet(p));
    fresh.setPolicy(a);
    fresh.setPolicy(b);
    expect(c.compile()).toEqual(fresh.compile());
    expect(c.compile().rules.filter((r) => r.direction === 'egress' && r.peer === MON).map((r) => r.subject)).toEqual([WEB, DB, CACHE]);

    // web is relabelled: no longer app=web, so db no longer allows it.
    c.setIdentity(WEB, labelSet({ ...pods[0]!, labels: { app: 'web2' } }));
    expect(c.compile().rules.filter((r) => r.direction === 'ingress' && r.peer !== HOST)).toEqual([]);
    c.deleteIdentity(MON);
    expect(c.compile().rules.some((r) => r.peer === MON)).toBe(false);
    expect(c.deletePolicy('shop', 'b')).toBe(true);
    expect(c.deletePolicy('shop', 'b')).toBe(false);
    expect(c.compile().enforcement).toEqual([{ identity: DB, ingress: true, egress: false }]);
    c.deletePolicy('shop', 'a');
    expect(c.compile()).toEqual({ rules: [], cidrRules: [], enforcement: [] });
  });
});
