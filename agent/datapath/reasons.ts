/**
 * Forwarding and drop reasons and hooks, mirroring bpf/include/veil/reasons.h (a unit test parses
 * the header and compares). Values are ABI with the pinned counter map: append, never renumber.
 * docs/datapath.md §Reasons.
 */
export const Reason = {
  FWD_LOCAL: 1,
  FWD_WIREGUARD: 2,
  FWD_IPSEC: 3,
  FWD_HOST: 4,
  FWD_TO_POD: 5,
  FWD_UPLINK: 6,
  FWD_NOT_IP: 7,
  DROP_INVALID_PACKET: 32,
  DROP_UNKNOWN_ENDPOINT: 33,
  DROP_SPOOFED_SOURCE: 34,
  DROP_POLICY_DENY: 35,
  DROP_POLICY_DEFAULT_DENY: 36,
  DROP_REQUIRES_ENCRYPTION: 37,
  DROP_REQUIRES_AUTH_IDENTITY: 38,
  DROP_STRICT_EGRESS: 39,
  DROP_STRICT_INGRESS: 40,
  DROP_NO_TUNNEL: 41,
  DROP_UNSUPPORTED_L3: 42,
  DROP_FRAGMENT: 43,
  DROP_CT_FULL: 44,
  DROP_UNKNOWN_IDENTITY: 45,
} as const;
export type ReasonName = keyof typeof Reason;

/** Highest forwarding reason; drops start above it. */
export const FWD_MAX = 31;
export const DROP_MAX = 63;
/** Counter slots per hook. */
export const REASON_MAX = 64;

export const Hook = {
  FROM_POD: 0,
  TO_POD: 1,
  UPLINK_EGRESS: 2,
  UPLINK_INGRESS: 3,
} as const;
export type HookName = keyof typeof Hook;
export const HOOK_MAX = 4;

const reasonNames = new Map<number, ReasonName>(Object.entries(Reason).map(([k, v]) => [v, k as ReasonName]));
const hookNames = new Map<number, HookName>(Object.entries(Hook).map(([k, v]) => [v, k as HookName]));

/** The name of a reason value, or `REASON_<n>` for one this agent does not know (newer programs). */
export function reasonName(v: number): string {
  return reasonNames.get(v) ?? `REASON_${v}`;
}

export function hookName(v: number): string {
  return hookNames.get(v) ?? `HOOK_${v}`;
}

export function isDrop(reason: number): boolean {
  return reason > FWD_MAX;
}

/** Index of (hook, reason) in the counter map. */
export function counterIndex(hook: number, reason: number): number {
  return hook * REASON_MAX + reason;
}
