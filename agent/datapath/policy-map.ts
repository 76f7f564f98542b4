/**
 * The policy map (veil_policy): raw (subject, peer, port, protocol, direction) -> verdict entries.
 * The rule compiler (policy-compile.ts) decides what goes in; this is only the typed map.
 */
import { openShared, type BpfMap, type MapSource } from './bpf-map.js';
import { policyKeyCodec, policyValueCodec, type PolicyKey, type PolicyValue } from './layout.js';

export const POLICY_MAP = 'veil_policy';
export type { PolicyKey, PolicyValue };
export type PolicyMap = BpfMap<PolicyKey, PolicyValue>;

export function openPolicyMap(source: MapSource): Promise<PolicyMap> {
  return openShared(source, POLICY_MAP, policyKeyCodec, policyValueCodec);
}
