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
import { requirementFlags, requirementLevel, type RequirementLevel } from './requirements.js';
import type { PolicyRule } from './rule.js';

interface Item {
  rule: PolicyRule;
  lo: number;
  hi: number;
  level: RequirementLevel;
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

function keyOf(r: PolicyRule): string {
  return `${r.subject}|${r.direction}|${r.peer}|${r.protocol}|${r.port ?? ''}|${r.endPort ?? ''}`;
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

/**
 * Normalizes allow rules (deny rules are passed through untouched: NetworkPolicy has none, and
 * deny-wins folding is the datapath compiler's). Output sorted with compareRules.
 */
export function normalizeRules(rules: readonly PolicyRule[]): PolicyRule[] {
  const denies: PolicyRule[] = [];
  // Dedup by key, keeping the weakest requirement.
  const byKey = new Map<string, Item>();
  for (const rule of rules) {
    if (rule.verdict !== 'allow') {
      denies.push(rule);
      continue;
    }
    const key = keyOf(rule);
    const level = requirementLevel(rule);
    const have = byKey.get(key);
    if (have) {
      if (level < have.level) have.level = level;
      continue;
    }
    const [lo, hi] = range(rule);
    byKey.set(key, { rule, lo, hi, level });
  }
  // Group by (subject, direction, peer): the only rules that can cover a rule are those of its
  // own peer and of peer 0.
  const groups = new Map<string, Item[]>();
  for (const item of byKey.values()) {
    const g = `${item.rule.subject}|${item.rule.direction}|${item.rule.peer}`;
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(item);
  }
  const candidates = (item: Item): Item[] => {
    const own = groups.get(`${item.rule.subject}|${item.rule.direction}|${item.rule.peer}`)!;
    if (item.rule.peer === 0) return own;
    return own.concat(groups.get(`${item.rule.subject}|${item.rule.direction}|0`) ?? []);
  };
  // 1. Fold requirements down (covering is transitive, so one pass over the coverers suffices
  //    when each coverer's own original level is used: min over all coverers).
  const folded = new Map<Item, RequirementLevel>();
  for (const item of byKey.values()) {
    let level = item.level;
    for (const other of candidates(item)) {
      if (other !== item && other.level < level && ruleCovers(other.rule, item.rule)) level = other.level;
    }
    folded.set(item, level);
  }
  // 2. Drop rules covered by a distinct rule with a requirement no stronger.
  const out: PolicyRule[] = [];
  for (const item of byKey.values()) {
    const level = folded.get(item)!;
    const redundant = candidates(item).some((other) => other !== item && folded.get(other)! <= level && ruleCovers(other.rule, item.rule));
    if (redundant) continue;
    const { requireEncryption: _e, requireAuthenticatedIdentity: _a, ...base } = item.rule;
    out.push({ ...base, ...requirementFlags(level) });
  }
  return out.concat(denies).sort(compareRules);
}
