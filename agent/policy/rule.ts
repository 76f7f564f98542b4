/**
 * An identity-level policy rule: the contract between the policy front end (Kubernetes
 * NetworkPolicy and Veil's extension → rules, agent/policy/) and the datapath's policy-map
 * compiler (rules → veil_policy map entries with "deny wins" folded in,
 * agent/datapath/policy-compile.ts). Identities are numeric (agent/identity/); 0 means "any".
 */

export type PolicyDirection = 'ingress' | 'egress';

/** IANA protocol numbers the datapath matches on; 0 = any protocol (then no ports). */
export const PROTOCOL_NUMBERS = { any: 0, icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 } as const;
export type PolicyProtocol = keyof typeof PROTOCOL_NUMBERS;

export interface PolicyRule {
  /** The identity whose pods the rule protects (the pod the policy selects). */
  subject: number;
  /** The identity on the other side: the source for ingress, the destination for egress. 0 = any. */
  peer: number;
  direction: PolicyDirection;
  protocol: PolicyProtocol;
  /** Destination port, 1..65535; absent = every port. Only with tcp, udp or sctp. */
  port?: number;
  /** Last port of a range starting at `port` (NetworkPolicy endPort); absent = just `port`. */
  endPort?: number;
  verdict: 'allow' | 'deny';
  /** Allow only packets that were (ingress) or will be (egress) encrypted between nodes. */
  requireEncryption?: boolean;
  /** Allow only packets whose source identity the kernel authenticated (IPsec per-identity SA). */
  requireAuthenticatedIdentity?: boolean;
}

/**
 * Which identities are isolated in which direction: a pod selected by any policy of a direction
 * is default-deny in that direction (Kubernetes semantics); others allow everything.
 */
export interface PolicyEnforcement {
  identity: number;
  ingress: boolean;
  egress: boolean;
}
