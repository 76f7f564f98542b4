/**
 * Normalization of allow rules, so that a datapath that looks up the most specific entry first
 * and stops at the first hit (bpf/include/veil/maps.h: (peer, proto, port) … (0, 0, 0)) gives the
 * same answer as Kubernetes' union semantics, where a packet is allowed when ANY rule allows it:
 *
 * 1. Requirements are folded down: a rule's requirement becomes the weakest requirement of the
 *    rules that cover it (same subject and direction, peer equal or 0 = any, protocol equal or
 *    any, port range containing its range). Otherwise a specific "tcp/80 from X, encrypted" entry
 *    would shadow a general "anything from anyone" rule and demand encryption that no policy
 *    demands for that packet.
 * 2. Exact duplicates are merged, and a rule covered by another rule whose requirement is no
 *    stronger is dropped (it can change no verdict).
 *
 * What stays for the datapath compiler: rules that overlap without one covering the other (two
 * port ranges that intersect). Where it expands them into the same map key it keeps the weaker
 * requirement of the two (docs/policy.md "Mapping to the datapath"). Rules from ipBlock peers are
 * normalized again after they are translated into CIDR-identity rules.
 */
import { requirementLevel, type RequirementLevel } from './requirements.js';
import type { PolicyRule } from './rule.js';

interface Item {
  rule: PolicyRule;
  lo: number;
  hi: number;
  /** The weakest requirement of the identical rules merged into this one. */
  level: RequirementLevel;
  /** After folding: the weakest requirement of every rule covering this one. */
  folded: RequirementLevel;
}

function range(r: PolicyRule): [number, number] {
  if (r.protocol === 'any' || r.port === undefined) return [0, 65535];
  return [r.port, r.endPort ?? r.port];
}

/** True when every packet `inner` matches, `outer` matches too (same subject and direction assumed). */
export function ruleCovers(outer: PolicyRule, inner: PolicyRule): boolean {
  if (outer.peer !== 0 && outer.peer !== inner.peer) return false;
  if (outer.protocol === 'any') return true;
  if (outer.protocol !== inner.protocol) return false;
  const [olo, ohi] = range(outer);
  const [ilo, ihi] = range(inner);
  return olo <= ilo && ihi <= ohi;
}

/** Orders rules by subject, direction, peer, protocol, port, end port. */
export function compareRules(a: PolicyRule, b: PolicyRule): number {
  return (
    a.subject - b.subject ||
    (a.direction === b.direction ? 0 : a.direction === 'ingress' ? -1 : 1) ||
    a.peer - b.peer ||
    (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0) ||
    (a.port ?? 0) - (b.port ?? 0) ||
    (a.endPort ?? a.port ?? 0) - (b.endPort ?? b.port ?? 0)
  );
}

/** (subject, direction, peer) as one number: subject and peer are below 2^24, so it stays exact. */
function groupOf(r: PolicyRule, peer = r.peer): number {
  return (r.subject * 2 ** 25 + peer) * 2 + (r.direction === 'ingress' ? 0 : 1);
}

/**
 * Normalizes allow rules (deny rules are passed through untouched: NetworkPolicy has none, and
 * deny-wins folding is the datapath compiler's). Output sorted with compareRules.
 */
export function normalizeRules(rules: readonly PolicyRule[]): PolicyRule[] {
  const denies: PolicyRule[] = [];
  // Group by (subject, direction, peer): the only rules that can cover a rule are those of its
  // own group and of the peer-0 group of its subject and direction. Groups are small (the ports
  // of one rule), so exact duplicates are found by a scan.
  const groups = new Map<number, Item[]>();
  for (const rule of rules) {
    if (rule.verdict !== 'allow') {
      denies.push(rule);
      continue;
    }
    const g = groupOf(rule);
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    const level = requirementLevel(rule);
    const [lo, hi] = range(rule);
    const same = list.find((x) => x.lo === lo && x.hi === hi && x.rule.protocol === rule.protocol && x.rule.port === rule.port && x.rule.endPort === rule.endPort);
    if (same) {
      if (level < same.level) same.level = level;
      continue;
    }
    list.push({ rule, lo, hi, level, folded: level });
  }
  const anyPeer = (r: PolicyRule): Item[] => groups.get(groupOf(r, 0)) ?? NONE;
  // 1. Fold requirements down: the weakest original level among the coverers (covering is
  //    transitive, so the coverers' own levels are all that is needed).
  for (const list of groups.values()) {
    for (const item of list) {
      item.folded = item.level;
      const wider = item.rule.peer === 0 ? NONE : anyPeer(item.rule);
      for (const other of list) if (other !== item && other.level < item.folded && ruleCovers(other.rule, item.rule)) item.folded = other.level;
      for (const other of wider) if (other.level < item.folded && ruleCovers(other.rule, item.rule)) item.folded = other.level;
    }
  }
  // 2. Drop rules covered by a distinct rule with a requirement no stronger.
  const out: PolicyRule[] = [];
  for (const list of groups.values()) {
    for (const item of list) {
      const covered = (other: Item) => other !== item && other.folded <= item.folded && ruleCovers(other.rule, item.rule);
      if (list.some(covered) || (item.rule.peer !== 0 && anyPeer(item.rule).some(covered))) continue;
      const r = item.rule;
      const rule: PolicyRule = { subject: r.subject, peer: r.peer, direction: r.direction, protocol: r.protocol, verdict: 'allow' };
      if (r.port !== undefined) rule.port = r.port;
      if (r.endPort !== undefined) rule.endPort = r.endPort;
      if (item.folded >= 1) rule.requireEncryption = true;
      if (item.folded >= 2) rule.requireAuthenticatedIdentity = true;
      out.push(rule);
    }
  }
  return out.concat(denies).sort(compareRules);
}

const NONE: Item[] = [];
