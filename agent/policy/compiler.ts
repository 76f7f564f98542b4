/**
 * The policy compiler: NetworkPolicies + the identities that exist → identity-pair allow rules
 * (PolicyRule), CIDR rules (CidrRule) and which identities are isolated per direction
 * (PolicyEnforcement), with Kubernetes semantics:
 *
 * - a policy's subjects are the identities of its namespace whose pod labels match podSelector;
 * - a subject selected by any policy listing a direction is isolated (default deny) in it, and
 *   allowed exactly what the union of those policies' rules of that direction allows;
 * - an identity no policy selects is not isolated and appears in no enforcement entry;
 * - traffic between a pod and its own node (reserved identity "host") is always allowed in both
 *   directions ("traffic to and from the node where a Pod is running is always allowed",
 *   Kubernetes NetworkPolicy documentation): kubelet probes keep working under default deny.
 *   Other nodes (remote-node), world and the other reserved identities get no exception.
 *
 * Incremental (docs/policy.md): selector results are kept per distinct selector and updated per
 * identity change (one selector test per selector, not a recompilation); each policy's part is
 * cached and rebuilt only when the policy or one of its selectors' results changed; normalized
 * rules are cached per subject and recomputed only for the subjects of rebuilt parts.
 */
import { ValidationError } from '../errors.js';
import { MAX_CLUSTER_ID, RESERVED_IDENTITIES } from '../identity/reserved.js';
import type { LabelSet } from '../identity/labels.js';
import type { CidrRule } from './cidr-rule.js';
import { identityLabels, type IdentityLabels } from './identity-view.js';
import { selectorMatches, type LabelSelector } from './label-selector.js';
import { policyKey, type NetworkPolicy, type PortSpec, type RuleSpec } from './network-policy.js';
import { REQUIRE_ENCRYPTED, REQUIRE_IDENTITY_BOUND, requirementFlags, type RequirementLevel } from './requirements.js';
import { compareRules, normalizeRules } from './rule-set.js';
import type { PolicyDirection, PolicyEnforcement, PolicyRule } from './rule.js';

export interface PolicyCompilation {
  rules: PolicyRule[];
  cidrRules: CidrRule[];
  /** Isolated identities only, sorted by identity. */
  enforcement: PolicyEnforcement[];
}

export interface PolicyCompilerOptions {
  /** Identity of the local node whose traffic to and from its pods is always allowed; default reserved "host" (1). */
  hostIdentity?: number;
}

/** Which identities a selector (in a scope) matches, kept up to date as identities come and go. */
interface Matcher {
  test(id: IdentityLabels): boolean;
  ids: Set<number>;
  users: Set<string>;
}

interface PolicyPart {
  /** The policy's rules by subject. */
  rules: Map<number, PolicyRule[]>;
  cidrRules: Map<number, CidrRule[]>;
  isolated: Record<PolicyDirection, Set<number>>;
  /** Every subject the part says anything about. */
  subjects: Set<number>;
}

interface PolicyEntry {
  policy: NetworkPolicy;
  matchers: string[];
  part: PolicyPart | null;
}

/** The normalized output for one subject identity. */
interface SubjectResult {
  rules: PolicyRule[];
  cidrRules: CidrRule[];
  enforcement: PolicyEnforcement;
}

const DIRECTIONS: readonly PolicyDirection[] = ['ingress', 'egress'];

export class PolicyCompiler {
  private readonly identities = new Map<number, IdentityLabels>();
  private readonly policies = new Map<string, PolicyEntry>();
  private readonly matchers = new Map<string, Matcher>();
  /** subject → keys of the policies whose parts mention it. */
  private readonly subjectPolicies = new Map<number, Set<string>>();
  private readonly bySubject = new Map<number, SubjectResult>();
  /** Subjects whose SubjectResult must be recomputed. */
  private readonly dirty = new Set<number>();
  private readonly hostIdentity: number;
  private result: PolicyCompilation | null = null;

  constructor(options: PolicyCompilerOptions = {}) {
    const host = options.hostIdentity ?? RESERVED_IDENTITIES.host;
    if (!Number.isInteger(host) || host < 1 || host > MAX_CLUSTER_ID) {
      throw new ValidationError('hostIdentity', `Host identity ${JSON.stringify(host)} is invalid: use the node's identity, an integer from 1 to ${MAX_CLUSTER_ID} (reserved "host" is ${RESERVED_IDENTITIES.host})`);
    }
    this.hostIdentity = host;
  }

  /** Adds or replaces a cluster identity (its labels may have changed). */
  setIdentity(id: number, labels: LabelSet): void {
    const view = identityLabels(id, labels);
    this.identities.set(id, view);
    for (const m of this.matchers.values()) {
      const had = m.ids.has(id);
      const has = m.test(view);
      if (had === has) continue;
      if (has) m.ids.add(id);
      else m.ids.delete(id);
      this.invalidate(m);
    }
  }

  deleteIdentity(id: number): void {
    if (!this.identities.delete(id)) return;
    for (const m of this.matchers.values()) if (m.ids.delete(id)) this.invalidate(m);
  }

  /** Adds or replaces a policy (keyed by namespace/name). */
  setPolicy(policy: NetworkPolicy): void {
    const key = policyKey(policy);
    this.deletePolicy(policy.namespace, policy.name);
    const keys = new Set<string>();
    const use = (mk: string, test: (id: IdentityLabels) => boolean) => {
      keys.add(mk);
      let m = this.matchers.get(mk);
      if (!m) {
        m = { test, ids: new Set(), users: new Set() };
        for (const id of this.identities.values()) if (test(id)) m.ids.add(id.id);
        this.matchers.set(mk, m);
      }
      m.users.add(key);
    };
    use(podsKey(policy.namespace, policy.podSelector), podsIn(policy.namespace, policy.podSelector));
    for (const dir of DIRECTIONS) {
      for (const rule of policy[dir] ?? []) {
        for (const peer of rule.peers ?? []) {
          if (peer.kind !== 'pods') continue;
          const [mk, test] = peerMatcher(policy.namespace, peer.podSelector, peer.namespaceSelector);
          use(mk, test);
        }
      }
    }
    this.policies.set(key, { policy, matchers: [...keys], part: null });
    this.result = null;
  }

  deletePolicy(namespace: string, name: string): boolean {
    const key = `${namespace}/${name}`;
    const entry = this.policies.get(key);
    if (!entry) return false;
    this.dropPart(key, entry);
    this.policies.delete(key);
    for (const mk of entry.matchers) {
      const m = this.matchers.get(mk)!;
      m.users.delete(key);
      if (m.users.size === 0) this.matchers.delete(mk);
    }
    this.result = null;
    return true;
  }

  /** The current compilation, cached until an identity or policy changes: shared, so treat it as read-only. */
  compile(): PolicyCompilation {
    if (this.result) return this.result;
    for (const [key, entry] of this.policies) {
      if (entry.part) continue;
      entry.part = this.compilePolicy(entry.policy);
      for (const s of entry.part.subjects) {
        let set = this.subjectPolicies.get(s);
        if (!set) this.subjectPolicies.set(s, (set = new Set()));
        set.add(key);
        this.dirty.add(s);
      }
    }
    for (const s of this.dirty) this.compileSubject(s);
    this.dirty.clear();
    const rules: PolicyRule[] = [];
    const cidrRules: CidrRule[] = [];
    const enforcement: PolicyEnforcement[] = [];
    for (const s of [...this.bySubject.keys()].sort((a, b) => a - b)) {
      const r = this.bySubject.get(s)!;
      for (const x of r.rules) rules.push(x);
      for (const x of r.cidrRules) cidrRules.push(x);
      if (r.enforcement.ingress || r.enforcement.egress) enforcement.push(r.enforcement);
    }
    this.result = { rules, cidrRules, enforcement };
    return this.result;
  }

  private invalidate(m: Matcher): void {
    for (const key of m.users) this.dropPart(key, this.policies.get(key)!);
    this.result = null;
  }

  /** Forgets a policy's compiled part; the subjects it mentioned are recomputed by compile(). */
  private dropPart(key: string, entry: PolicyEntry): void {
    if (!entry.part) return;
    for (const s of entry.part.subjects) {
      this.subjectPolicies.get(s)?.delete(key);
      this.dirty.add(s);
    }
    entry.part = null;
  }

  private compileSubject(subject: number): void {
    const keys = this.subjectPolicies.get(subject);
    if (!keys || keys.size === 0) {
      this.subjectPolicies.delete(subject);
      this.bySubject.delete(subject);
      return;
    }
    const rules: PolicyRule[] = [];
    const cidrRules: CidrRule[] = [];
    const enforcement: PolicyEnforcement = { identity: subject, ingress: false, egress: false };
    for (const key of keys) {
      const part = this.policies.get(key)!.part!;
      for (const r of part.rules.get(subject) ?? []) rules.push(r);
      for (const r of part.cidrRules.get(subject) ?? []) cidrRules.push(r);
      for (const dir of DIRECTIONS) if (part.isolated[dir].has(subject)) enforcement[dir] = true;
    }
    for (const dir of DIRECTIONS) {
      if (enforcement[dir]) rules.push({ subject, peer: this.hostIdentity, direction: dir, protocol: 'any', verdict: 'allow' });
    }
    this.bySubject.set(subject, { rules: normalizeRules(rules), cidrRules: dedupCidr(cidrRules), enforcement });
  }

  private ids(mk: string): number[] {
    return [...this.matchers.get(mk)!.ids].sort((a, b) => a - b);
  }

  private compilePolicy(policy: NetworkPolicy): PolicyPart {
    const subjects = this.ids(podsKey(policy.namespace, policy.podSelector));
    const part: PolicyPart = { rules: new Map(), cidrRules: new Map(), isolated: { ingress: new Set(), egress: new Set() }, subjects: new Set() };
    for (const direction of DIRECTIONS) {
      const specs = policy[direction];
      if (specs === null) continue;
      for (const s of subjects) {
        part.isolated[direction].add(s);
        part.subjects.add(s);
      }
      for (const spec of specs) this.compileRule(policy.namespace, direction, spec, subjects, part);
    }
    return part;
  }

  private compileRule(namespace: string, direction: PolicyDirection, spec: RuleSpec, subjects: number[], part: PolicyPart): void {
    if (subjects.length === 0) return;
    const ports: Array<PortSpec | null> = spec.ports.length === 0 ? [null] : spec.ports;
    const flags = requirementFlags(spec.requirement);
    const peers = new Set<number>();
    if (spec.peers === null) peers.add(0);
    for (const peer of spec.peers ?? []) {
      if (peer.kind === 'pods') {
        for (const id of this.matchers.get(peerMatcher(namespace, peer.podSelector, peer.namespaceSelector)[0])!.ids) peers.add(id);
        continue;
      }
      for (const subject of subjects) {
        const list = listFor(part.cidrRules, subject);
        for (const p of ports) list.push({ subject, direction, cidr: peer.cidr, except: peer.except, ...portFields(p), verdict: 'allow', ...flags });
      }
    }
    for (const subject of subjects) {
      const list = listFor(part.rules, subject);
      for (const peer of peers) {
        for (const p of ports) list.push(identityRule(subject, peer, direction, p, spec.requirement));
      }
    }
  }
}

function listFor<T>(map: Map<number, T[]>, key: number): T[] {
  let list = map.get(key);
  if (!list) map.set(key, (list = []));
  return list;
}

/** One allow rule, built field by field (the hot path of a compilation: no spreads). */
function identityRule(subject: number, peer: number, direction: PolicyDirection, p: PortSpec | null, level: RequirementLevel): PolicyRule {
  const rule: PolicyRule = { subject, peer, direction, protocol: p === null ? 'any' : p.protocol, verdict: 'allow' };
  if (p !== null && p.port !== undefined) rule.port = p.port;
  if (p !== null && p.endPort !== undefined) rule.endPort = p.endPort;
  if (level >= REQUIRE_ENCRYPTED) rule.requireEncryption = true;
  if (level >= REQUIRE_IDENTITY_BOUND) rule.requireAuthenticatedIdentity = true;
  return rule;
}

function portFields(p: PortSpec | null): Pick<PolicyRule, 'protocol' | 'port' | 'endPort'> {
  if (p === null) return { protocol: 'any' };
  const out: Pick<PolicyRule, 'protocol' | 'port' | 'endPort'> = { protocol: p.protocol };
  if (p.port !== undefined) out.port = p.port;
  if (p.endPort !== undefined) out.endPort = p.endPort;
  return out;
}

function podsKey(namespace: string, selector: LabelSelector): string {
  return `pods|${namespace}|${selector.key}`;
}

function podsIn(namespace: string, selector: LabelSelector): (id: IdentityLabels) => boolean {
  return (id) => id.namespace === namespace && selectorMatches(selector, id.podLabels);
}

/** Kubernetes peer semantics: pod selector alone → own namespace; namespace selector alone → all pods there; both → AND. */
function peerMatcher(namespace: string, pod?: LabelSelector, ns?: LabelSelector): [string, (id: IdentityLabels) => boolean] {
  if (ns === undefined) return [podsKey(namespace, pod!), podsIn(namespace, pod!)];
  if (pod === undefined) return [`ns|${ns.key}`, (id) => selectorMatches(ns, id.namespaceLabels)];
  return [`ns+pods|${ns.key}|${pod.key}`, (id) => selectorMatches(ns, id.namespaceLabels) && selectorMatches(pod, id.podLabels)];
}

function cidrKey(r: CidrRule): string {
  const c = (x: { addr: string; prefixLen: number }) => `${x.addr}/${x.prefixLen}`;
  return `${r.subject}|${r.direction}|${c(r.cidr)}|${r.except.map(c).sort().join(',')}|${r.protocol}|${r.port ?? ''}|${r.endPort ?? ''}`;
}

/** Merges identical CIDR rules, keeping the weaker requirement; sorted like identity rules. */
function dedupCidr(rules: CidrRule[]): CidrRule[] {
  const byKey = new Map<string, CidrRule>();
  for (const r of rules) {
    const key = cidrKey(r);
    const have = byKey.get(key);
    if (!have) {
      byKey.set(key, { ...r, except: [...r.except].sort((a, b) => (`${a.addr}/${a.prefixLen}` < `${b.addr}/${b.prefixLen}` ? -1 : 1)) });
      continue;
    }
    if (!r.requireAuthenticatedIdentity) delete have.requireAuthenticatedIdentity;
    if (!r.requireEncryption) delete have.requireEncryption;
  }
  return [...byKey.values()].sort((a, b) => compareRules({ ...a, peer: 0 }, { ...b, peer: 0 }) || (cidrKey(a) < cidrKey(b) ? -1 : cidrKey(a) > cidrKey(b) ? 1 : 0));
}

/** One-shot compilation of a set of policies against a set of identities. */
export function compilePolicies(policies: Iterable<NetworkPolicy>, identities: Iterable<readonly [number, LabelSet]>, options?: PolicyCompilerOptions): PolicyCompilation {
  const c = new PolicyCompiler(options);
  for (const [id, labels] of identities) c.setIdentity(id, labels);
  for (const p of policies) c.setPolicy(p);
  return c.compile();
}
