/**
 * From CIDR rules to identity rules, once the ipcache side has given every prefix an identity
 * (docs/policy.md "ipBlock"). The ipcache resolves an address to the identity of the longest
 * prefix containing it; prefixes either nest or are disjoint. So, with P the set of every `cidr`
 * and `except` prefix of the rules, a rule (cidr C, except E) allows exactly the identities of the
 * prefixes p in P with p inside C and p inside none of E:
 *
 * - every address resolving to such a p lies in p ⊆ C, and in no e ∈ E: an e inside p is longer,
 *   so its addresses resolve to e (or longer), not to p; an e containing p is excluded by the
 *   condition; a disjoint e does not matter;
 * - an address resolving to a p inside some e is excluded, as the rule says;
 * - an address resolving to a p outside C (or to no prefix: world) is not in C, since C ∈ P would
 *   be longer.
 */
import { ValidationError } from '../errors.js';
import { formatCidr, type Cidr } from '../net/ip.js';
import { contains, type CidrRule } from './cidr-rule.js';
import { normalizeRules } from './rule-set.js';
import type { PolicyRule } from './rule.js';

/** Every distinct prefix the rules mention (cidr and except), sorted by family, address, length. */
export function cidrPrefixes(rules: readonly CidrRule[]): Cidr[] {
  const byText = new Map<string, Cidr>();
  for (const r of rules) {
    for (const c of [r.cidr, ...r.except]) byText.set(formatCidr(c), { addr: c.addr, prefixLen: c.prefixLen, family: c.family });
  }
  return [...byText.values()].sort((a, b) => a.family - b.family || cmpText(a.addr, b.addr) || a.prefixLen - b.prefixLen);
}

function cmpText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The identity rules equivalent to `rules` given the identity of every prefix of
 * cidrPrefixes(rules). `identityOf` must return an integer identity ≥ 1 for each of them.
 */
export function cidrRulesToPolicyRules(rules: readonly CidrRule[], identityOf: (prefix: Cidr) => number): PolicyRule[] {
  const prefixes = cidrPrefixes(rules).map((p) => {
    const id = identityOf(p);
    if (!Number.isInteger(id) || id < 1) {
      throw new ValidationError('identityOf', `Prefix "${formatCidr(p)}" was given identity ${JSON.stringify(id)}: give every prefix an integer identity of at least 1`);
    }
    return { prefix: p, id };
  });
  const out: PolicyRule[] = [];
  for (const r of rules) {
    for (const { prefix, id } of prefixes) {
      if (!contains(r.cidr, prefix) || r.except.some((e) => contains(e, prefix))) continue;
      const rule: PolicyRule = { subject: r.subject, peer: id, direction: r.direction, protocol: r.protocol, verdict: 'allow' };
      if (r.port !== undefined) rule.port = r.port;
      if (r.endPort !== undefined) rule.endPort = r.endPort;
      if (r.requireEncryption) rule.requireEncryption = true;
      if (r.requireAuthenticatedIdentity) rule.requireAuthenticatedIdentity = true;
      out.push(rule);
    }
  }
  return out;
}

/** Identity rules and translated CIDR rules together, normalized again (for the datapath compiler). */
export function withCidrIdentities(compiled: { rules: readonly PolicyRule[]; cidrRules: readonly CidrRule[] }, identityOf: (prefix: Cidr) => number): PolicyRule[] {
  if (compiled.cidrRules.length === 0) return [...compiled.rules];
  return normalizeRules([...compiled.rules, ...cidrRulesToPolicyRules(compiled.cidrRules, identityOf)]);
}
