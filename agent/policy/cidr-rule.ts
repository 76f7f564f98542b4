/**
 * A rule whose peer is an address block (NetworkPolicy ipBlock) instead of an identity. The
 * datapath's policy map is keyed by identities, so CIDR rules reach it in two steps
 * (docs/policy.md "ipBlock"): the ipcache side gives every distinct prefix (cidr and each except)
 * a CIDR identity and installs it in the ipcache's LPM tier, where the longest prefix wins; then
 * cidr-identities.ts turns each CidrRule into PolicyRules whose peers are those identities. The
 * compiler reports CIDR rules beside the identity rules, merged when identical.
 */
import { formatIp, maskHostBits, parseIp, type Cidr } from '../net/ip.js';
import type { PolicyDirection, PolicyProtocol } from './rule.js';

export interface CidrRule {
  /** The identity whose pods the rule protects. */
  subject: number;
  direction: PolicyDirection;
  /** The allowed block, canonical ("10.0.0.0/8", "fd00::/64"). */
  cidr: Cidr;
  /** Prefixes inside `cidr` that are not allowed (strictly longer, same family), sorted. */
  except: Cidr[];
  protocol: PolicyProtocol;
  port?: number;
  endPort?: number;
  verdict: 'allow';
  requireEncryption?: boolean;
  requireAuthenticatedIdentity?: boolean;
}

/** True when prefix `inner` lies inside prefix `outer` (same family, inner at least as long). */
export function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefixLen < outer.prefixLen) return false;
  const a = parseIp(outer.addr);
  const b = parseIp(inner.addr);
  if (!a || !b) return false;
  return formatIp(maskHostBits(a, outer.prefixLen)) === formatIp(maskHostBits(b, outer.prefixLen));
}
