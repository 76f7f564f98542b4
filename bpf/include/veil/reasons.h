/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Why the datapath forwarded or dropped a packet. Helpers return a negative drop reason
 * (-VEIL_DROP_*); only entry programs turn it into TC_ACT_SHOT. Counters are indexed by
 * (hook, reason). Mirrored by agent/datapath/reasons.ts; a unit test compares the two.
 * Documented in docs/datapath.md §Reasons. Values are part of the ABI with pinned counter maps:
 * append, never renumber.
 */
#ifndef VEIL_REASONS_H
#define VEIL_REASONS_H

/* Forwarding outcomes (counted, packet continues). */
#define VEIL_FWD_LOCAL 1 /* to a pod on this node */
#define VEIL_FWD_WIREGUARD 2 /* redirected into the WireGuard device */
#define VEIL_FWD_IPSEC 3 /* encrypt mark set for XFRM */
#define VEIL_FWD_HOST 4 /* to the node itself or outside the cluster: the kernel routes it */
#define VEIL_FWD_TO_POD 5 /* delivered to the pod (to-pod allowed it) */
#define VEIL_FWD_UPLINK 6 /* uplink program let it pass (encrypted, or not pod traffic) */
#define VEIL_FWD_NOT_IP 7 /* ARP and other non-IP frames pass untouched */
#define VEIL_FWD_MAX 31

/* Drops (the packet is discarded; an event is emitted). */
#define VEIL_DROP_INVALID_PACKET 32 /* truncated or malformed headers */
#define VEIL_DROP_UNKNOWN_ENDPOINT 33 /* interface not in the endpoint map */
#define VEIL_DROP_SPOOFED_SOURCE 34 /* source address is not the pod's own */
#define VEIL_DROP_POLICY_DENY 35 /* an explicit deny rule matched */
#define VEIL_DROP_POLICY_DEFAULT_DENY 36 /* policy enforced and no rule allowed it */
#define VEIL_DROP_REQUIRES_ENCRYPTION 37 /* the matching rule requires encryption; packet was not */
#define VEIL_DROP_REQUIRES_AUTH_IDENTITY 38 /* rule requires a kernel-authenticated identity */
#define VEIL_DROP_STRICT_EGRESS 39 /* pod packet about to leave the uplink in plaintext */
#define VEIL_DROP_STRICT_INGRESS 40 /* plaintext pod packet arrived on the uplink */
#define VEIL_DROP_NO_TUNNEL 41 /* remote pod but no tunnel/key to reach it: never plaintext */
#define VEIL_DROP_UNSUPPORTED_L3 42 /* an L3 protocol pods may not send (not IPv4/IPv6/ARP) */
#define VEIL_DROP_FRAGMENT 43 /* a non-first fragment without conntrack state */
#define VEIL_DROP_CT_FULL 44 /* connection table could not take a new entry */
#define VEIL_DROP_UNKNOWN_IDENTITY 45 /* decrypted mark or ipcache gave identity 0 */
#define VEIL_DROP_MAX 63

#define VEIL_REASON_MAX 64 /* counters hold VEIL_REASON_MAX slots per hook */

/* Hooks (which program counted). */
#define VEIL_HOOK_FROM_POD 0
#define VEIL_HOOK_TO_POD 1
#define VEIL_HOOK_UPLINK_EGRESS 2
#define VEIL_HOOK_UPLINK_INGRESS 3
#define VEIL_HOOK_MAX 4

#endif /* VEIL_REASONS_H */
