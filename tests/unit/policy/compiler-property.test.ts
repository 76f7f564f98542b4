/**
 * Property tests: the compiled rules allow exactly what the policies allow (Kubernetes union
 * semantics, written out directly below as an oracle), for random identities, random policies
 * (sent through the parser as JSON) and random packets; and the incremental compiler always equals
 * a fresh compilation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PolicyCompiler, type PolicyCompilation } from '../../../agent/policy/compiler.js';
import { selectorMatches } from '../../../agent/policy/label-selector.js';
import type { NetworkPolicy } from '../../../agent/policy/network-policy.js';
import { parsePolicies } from '../../../agent/policy/policy-file.js';
import type { PolicyDirection } from '../../../agent/policy/rule.js';
import { labelSet, type Pod } from './policy-fixture.js';

const HOST = 1;
const WORLD = 2;
const NAMESPACES = ['a', 'b'];
const NS_LABELS: Record<string, Record<string, string>> = { a: { team: 'p' }, b: { team: 'q' } };

const arbLabels = fc.dictionary(fc.constantFrom('app', 'tier'), fc.constantFrom('x', 'y'), { maxKeys: 2 });
const arbPods = fc
  .uniqueArray(fc.record({ namespace: fc.constantFrom(...NAMESPACES), labels: arbLabels }), { minLength: 1, maxLength: 6 })
  .map((list) => list.map((p, i): Pod => ({ id: 300 + i, namespace: p.namespace, labels: p.labels, namespaceLabels: NS_LABELS[p.namespace]! })));

const arbSelector = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: arbLabels }),
  fc.record({
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({ key: fc.constantFrom('app', 'tier', 'team'), operator: fc.constantFrom('In', 'NotIn'), values: fc.uniqueArray(fc.constantFrom('x', 'y', 'p', 'q'), { minLength: 1 }) }),
        fc.record({ key: fc.constantFrom('app', 'tier', 'team', 'kubernetes.io/metadata.name'), operator: fc.constantFrom('Exists', 'DoesNotExist') }),
      ),
      { maxLength: 2 },
    ),
  }),
);
const arbPeer = fc.oneof(
  fc.record({ podSelector: arbSelector }),
  fc.record({ namespaceSelector: arbSelector }),
  fc.record({ podSelector: arbSelector, namespaceSelector: arbSelector }),
  fc.record({ ipBlock: fc.constant({ cidr: '10.0.0.0/8' }) }),
);
const arbPort = fc.oneof(
  fc.record({ protocol: fc.constantFrom('TCP', 'UDP') }),
  fc.record({ protocol: fc.constantFrom('TCP', 'UDP', 'SCTP'), port: fc.integer({ min: 1, max: 8 }) }),
  fc.integer({ min: 1, max: 8 }).chain((port) => fc.record({ protocol: fc.constant('TCP'), port: fc.constant(port), endPort: fc.integer({ min: port, max: 10 }) })),
);
const arbRule = fc.record({ peers: fc.option(fc.array(arbPeer, { maxLength: 3 }), { nil: undefined }), ports: fc.option(fc.array(arbPort, { maxLength: 3 }), { nil: undefined }) });
const arbPolicy = fc.record({
  namespace: fc.constantFrom(...NAMESPACES),
  podSelector: arbSelector,
  policyTypes: fc.option(fc.subarray(['Ingress', 'Egress']), { nil: undefined }),
  ingress: fc.array(arbRule, { maxLength: 3 }),
  egress: fc.array(arbRule, { maxLength: 3 }),
  levels: fc.array(fc.constantFrom('', 'encrypted', 'identity-bound'), { minLength: 6, maxLength: 6 }),
});

type PolicyInput = typeof arbPolicy extends fc.Arbitrary<infer T> ? T : never;

/** A random policy as a Kubernetes object (rules the policy types leave out are dropped, as the parser demands). */
function toObject(p: PolicyInput, i: number): object {
  const types = p.policyTypes;
  const keep = (dir: 'Ingress' | 'Egress', rules: typeof p.ingress) => (types === undefined || types.length === 0 ? dir === 'Ingress' || rules.length > 0 : types.includes(dir)) ? rules : [];
  const ingress = keep('Ingress', p.ingress);
  const egress = types === undefined || types.length === 0 ? p.egress : keep('Egress', p.egress);
  const rule = (key: 'from' | 'to') => (r: (typeof p.ingress)[number]) => ({ ...(r.peers ? { [key]: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) });
  const annotations: Record<string, string> = {};
  ingress.forEach((_, j) => p.levels[j] && (annotations[`policy.veil.dev/require-ingress.${j}`] = p.levels[j]!));
  egress.forEach((_, j) => p.levels[3 + j] && (annotations[`policy.veil.dev/require-egress.${j}`] = p.levels[3 + j]!));
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `p${i}`, namespace: p.namespace, annotations },
    spec: { podSelector: p.podSelector, ...(types ? { policyTypes: types } : {}), ingress: ingress.map(rule('from')), egress: egress.map(rule('to')) },
  };
}

interface Packet {
  subject: number;
  peer: number;
  direction: PolicyDirection;
  protocol: 'tcp' | 'udp' | 'sctp' | 'icmp';
  port: number;
  /** 0 plain, 1 encrypted, 2 encrypted with an authenticated identity. */
  level: number;
}

/** Kubernetes semantics, straight from the documentation. */
function oracle(pods: Pod[], policies: NetworkPolicy[], k: Packet): boolean {
  const self = pods.find((p) => p.id === k.subject)!;
  const podLabels = (p: Pod) => new Map(Object.entries(p.labels ?? {}));
  const nsLabels = (p: Pod) => new Map([...Object.entries(p.namespaceLabels ?? {}), ['kubernetes.io/metadata.name', p.namespace]]);
  const selecting = policies.filter((p) => p[k.direction] !== null && p.namespace === self.namespace && selectorMatches(p.podSelector, podLabels(self)));
  if (selecting.length === 0) return true;
  if (k.peer === HOST) return true;
  const other = pods.find((p) => p.id === k.peer);
  return selecting.some((p) =>
    p[k.direction]!.some((rule) => {
      if (rule.requirement > k.level) return false;
      const peerOk =
        rule.peers === null ||
        rule.peers.some((peer) => {
          if (peer.kind !== 'pods' || other === undefined) return false;
          const nsOk = peer.namespaceSelector ? selectorMatches(peer.namespaceSelector, nsLabels(other)) : other.namespace === p.namespace;
          return nsOk && (peer.podSelector === undefined || selectorMatches(peer.podSelector, podLabels(other)));
        });
      const portOk = rule.ports.length === 0 || rule.ports.some((pt) => pt.protocol === k.protocol && (pt.port === undefined || (k.port >= pt.port && k.port <= (pt.endPort ?? pt.port))));
      return peerOk && portOk;
    }),
  );
}

/** The compiled output read as the datapath's contract says (docs/policy.md). */
function evaluate(out: PolicyCompilation, k: Packet): boolean {
  const enf = out.enforcement.find((e) => e.identity === k.subject);
  if (!enf || !enf[k.direction]) return true;
  return out.rules.some(
    (r) =>
      r.subject === k.subject &&
      r.direction === k.direction &&
      (r.peer === 0 || r.peer === k.peer) &&
      (r.protocol === 'any' || (r.protocol === k.protocol && (r.port === undefined || (k.port >= r.port && k.port <= (r.endPort ?? r.port))))) &&
      (r.requireAuthenticatedIdentity ? 2 : r.requireEncryption ? 1 : 0) <= k.level,
  );
}

const arbCase = arbPods.chain((pods) =>
  fc.record({
    pods: fc.constant(pods),
    policies: fc.array(arbPolicy, { minLength: 1, maxLength: 4 }),
    packets: fc.array(
      fc.record({
        subject: fc.constantFrom(...pods.map((p) => p.id)),
        peer: fc.constantFrom(HOST, WORLD, ...pods.map((p) => p.id)),
        direction: fc.constantFrom<PolicyDirection>('ingress', 'egress'),
        protocol: fc.constantFrom<Packet['protocol']>('tcp', 'udp', 'sctp', 'icmp'),
        port: fc.integer({ min: 1, max: 11 }),
        level: fc.integer({ min: 0, max: 2 }),
      }),
      { minLength: 20, maxLength: 60 },
    ),
  }),
);

describe('compiled policy (property)', () => {
  it('allows exactly what the policies allow: never more when a pod is isolated, never less', () => {
    fc.assert(
      fc.property(arbCase, ({ pods, policies: inputs, packets }) => {
        const policies = parsePolicies(inputs.map((p, i) => JSON.stringify(toObject(p, i))).join('\n---\n'), { source: 'random' });
        const c = new PolicyCompiler();
        for (const p of pods) c.setIdentity(p.id, labelSet(p));
        for (const p of policies) c.setPolicy(p);
        const out = c.compile();
        for (const k of packets) {
          const want = oracle(pods, policies, k);
          if (evaluate(out, k) !== want) {
            throw new Error(`Packet ${JSON.stringify(k)}: policies say ${want ? 'allow' : 'deny'}, compiled rules say the opposite`);
          }
        }
        // Isolation is exactly "selected by a policy of that direction".
        for (const p of pods) {
          for (const dir of ['ingress', 'egress'] as const) {
            const sel = policies.some((q) => q[dir] !== null && q.namespace === p.namespace && selectorMatches(q.podSelector, new Map(Object.entries(p.labels ?? {}))));
            expect(out.enforcement.find((e) => e.identity === p.id)?.[dir] ?? false).toBe(sel);
          }
        }
        // ipBlock peers only ever produce CIDR rules.
        expect(out.rules.every((r) => r.peer === 0 || r.peer === HOST || pods.some((p) => p.id === r.peer))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('the incremental compiler equals a fresh compilation after any sequence of changes', () => {
    const arbOps = arbPods.chain((pods) =>
      fc.record({
        pods: fc.constant(pods),
        policies: fc.array(arbPolicy, { minLength: 1, maxLength: 3 }),
        ops: fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('set-id' as const), index: fc.nat(), labels: arbLabels }),
            fc.record({ op: fc.constant('del-id' as const), index: fc.nat() }),
            fc.record({ op: fc.constant('set-pol' as const), index: fc.nat() }),
            fc.record({ op: fc.constant('del-pol' as const), index: fc.nat() }),
            fc.record({ op: fc.constant('compile' as const) }),
          ),
          { maxLength: 25 },
        ),
      }),
    );
    fc.assert(
      fc.property(arbOps, ({ pods, policies: inputs, ops }) => {
        const all = parsePolicies(inputs.map((p, i) => JSON.stringify(toObject(p, i))).join('\n---\n'));
        const c = new PolicyCompiler();
        const ids = new Map<number, Pod>();
        const pols = new Map<string, NetworkPolicy>();
        for (const o of ops) {
          if (o.op === 'set-id') {
            const p = { ...pods[o.index % pods.length]!, labels: o.labels };
            ids.set(p.id, p);
            c.setIdentity(p.id, labelSet(p));
          } else if (o.op === 'del-id') {
            const p = pods[o.index % pods.length]!;
            ids.delete(p.id);
            c.deleteIdentity(p.id);
          } else if (o.op === 'set-pol') {
            const p = all[o.index % all.length]!;
            pols.set(p.name, p);
            c.setPolicy(p);
          } else if (o.op === 'del-pol') {
            const p = all[o.index % all.length]!;
            pols.delete(p.name);
            c.deletePolicy(p.namespace, p.name);
          } else {
            c.compile();
          }
        }
        const fresh = new PolicyCompiler();
        for (const p of ids.values()) fresh.setIdentity(p.id, labelSet(p));
        for (const p of pols.values()) fresh.setPolicy(p);
        expect(c.compile()).toEqual(fresh.compile());
      }),
      { numRuns: 300 },
    );
  });
});
