/**
 * Veil's extension to NetworkPolicy: per-rule requirements, written as annotations so the object
 * stays a standard networking.k8s.io/v1 NetworkPolicy that any cluster accepts.
 *
 *   policy.veil.dev/require-ingress.<i>: <requirement>   rule spec.ingress[i]
 *   policy.veil.dev/require-egress.<i>:  <requirement>   rule spec.egress[i]
 *   policy.veil.dev/require-ingress:     <requirement>   every ingress rule of the policy
 *   policy.veil.dev/require-egress:      <requirement>   every egress rule of the policy
 *
 * <requirement> is a comma-separated list of `encrypted` and `identity-bound`. identity-bound
 * implies encrypted (the identity is authenticated by the per-identity IPsec SA that encrypted the
 * packet), so the requirements form three levels: none < encrypted < identity-bound. When a
 * direction-wide and a per-rule annotation both apply, the stricter one holds. Any other key
 * under policy.veil.dev/ is an error (a misspelt requirement must never silently mean "none").
 */
import { quote } from '../store/validate.js';
import { InputReader, join } from './input-reader.js';
import type { PolicyDirection } from './rule.js';

export const ANNOTATION_PREFIX = 'policy.veil.dev/';

/** 0 none, 1 encrypted, 2 identity-bound (authenticated identity, which implies encrypted). */
export type RequirementLevel = 0 | 1 | 2;
export const REQUIRE_NONE: RequirementLevel = 0;
export const REQUIRE_ENCRYPTED: RequirementLevel = 1;
export const REQUIRE_IDENTITY_BOUND: RequirementLevel = 2;

const TOKENS: Record<string, RequirementLevel> = { encrypted: REQUIRE_ENCRYPTED, 'identity-bound': REQUIRE_IDENTITY_BOUND };
const KEY = /^require-(ingress|egress)(?:\.(0|[1-9][0-9]{0,2}))?$/;

/** The requirement of every rule, per direction, indexed like spec.ingress / spec.egress. */
export interface RuleRequirements {
  ingress: RequirementLevel[];
  egress: RequirementLevel[];
}

function parseValue(r: InputReader, path: string, value: string): RequirementLevel {
  const parts = value.split(',').map((p) => p.trim());
  let level: RequirementLevel = REQUIRE_NONE;
  const seen = new Set<string>();
  for (const p of parts) {
    const l = TOKENS[p];
    if (l === undefined || !Object.hasOwn(TOKENS, p)) {
      throw r.fail(path, `requirement ${quote(p)} is unknown: use "encrypted", "identity-bound" or "encrypted,identity-bound"`);
    }
    if (seen.has(p)) throw r.fail(path, `requirement ${quote(p)} is listed twice: list it once`);
    seen.add(p);
    if (l > level) level = l;
  }
  return level;
}

/**
 * Reads the policy.veil.dev/ annotations; `counts` are the numbers of ingress and egress rules
 * the policy has (after policyTypes), so that an index past the end is an error.
 */
export function parseRequirements(
  r: InputReader,
  annotations: ReadonlyArray<readonly [string, string]>,
  counts: Record<PolicyDirection, number>,
): RuleRequirements {
  const out: RuleRequirements = { ingress: new Array(counts.ingress).fill(REQUIRE_NONE), egress: new Array(counts.egress).fill(REQUIRE_NONE) };
  for (const [key, value] of annotations) {
    if (!key.startsWith(ANNOTATION_PREFIX)) continue;
    const path = join('metadata.annotations', key);
    const m = KEY.exec(key.slice(ANNOTATION_PREFIX.length));
    if (!m) {
      throw r.fail(path, `annotation ${quote(key)} is not a Veil policy annotation: use "${ANNOTATION_PREFIX}require-ingress.<rule index>" or "${ANNOTATION_PREFIX}require-egress.<rule index>" (or without ".<rule index>" for every rule)`);
    }
    const dir = m[1] as PolicyDirection;
    const level = parseValue(r, path, value);
    const levels = out[dir];
    if (m[2] === undefined) {
      if (counts[dir] === 0) throw r.fail(path, `the policy has no ${dir} rules to require ${quote(value)} of: remove the annotation or add ${dir} rules`);
      for (let i = 0; i < levels.length; i++) levels[i] = Math.max(levels[i]!, level) as RequirementLevel;
      continue;
    }
    const index = Number(m[2]);
    if (index >= counts[dir]) {
      throw r.fail(path, `rule index ${index} does not exist: spec.${dir} has ${counts[dir]} rule(s) under policyTypes, numbered from 0`);
    }
    levels[index] = Math.max(levels[index]!, level) as RequirementLevel;
  }
  return out;
}

/** The rule flags of a level (PolicyRule.requireEncryption / requireAuthenticatedIdentity). */
export function requirementFlags(level: RequirementLevel): { requireEncryption?: true; requireAuthenticatedIdentity?: true } {
  if (level === REQUIRE_IDENTITY_BOUND) return { requireEncryption: true, requireAuthenticatedIdentity: true };
  if (level === REQUIRE_ENCRYPTED) return { requireEncryption: true };
  return {};
}

/** The level of a rule's flags. */
export function requirementLevel(flags: { requireEncryption?: boolean; requireAuthenticatedIdentity?: boolean }): RequirementLevel {
  if (flags.requireAuthenticatedIdentity) return REQUIRE_IDENTITY_BOUND;
  if (flags.requireEncryption) return REQUIRE_ENCRYPTED;
  return REQUIRE_NONE;
}
