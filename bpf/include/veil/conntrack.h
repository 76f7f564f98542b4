/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Connection tracking table layouts, shared with agent/datapath/conntrack.ts (list, decode) and
 * agent/datapath/conntrack-gc.ts (sweep of expired entries). One LRU hash per family so the IPv4
 * key stays 16 bytes (the hash of a short key is what every established packet pays).
 *
 * An entry is keyed by the tuple of the packet that opened the connection (the "forward"
 * direction, initiator -> responder). A packet whose own tuple is found is forward traffic; a
 * packet whose swapped tuple is found is a reply. ICMP echo: the request is keyed
 * (sport = echo id, dport = 0), a reply is looked up swapped (sport = 0, dport = id), so it finds
 * the request's entry. Addresses in network byte order, everything else in host byte order.
 *
 * expires_ns is on the bpf_ktime_get_coarse_ns() clock (CLOCK_MONOTONIC_COARSE: the monotonic
 * clock at tick resolution, which costs a memory read instead of a clocksource read on every
 * packet); entries past it are ignored by the programs and deleted by the agent's sweep (or
 * evicted by the LRU when the table is full).
 */
#ifndef VEIL_CONNTRACK_H
#define VEIL_CONNTRACK_H

#include <linux/types.h>

/* Which side's policy admitted the connection. A reply passes from-pod only when the local
 * responder's ingress admitted the connection (CT_F_INGRESS_OK), and passes to-pod only when the
 * local initiator's egress admitted it (CT_F_EGRESS_OK). */
#define VEIL_CT_F_EGRESS_OK (1u << 0) /* from-pod of the initiator allowed it */
#define VEIL_CT_F_INGRESS_OK (1u << 1) /* to-pod of the responder allowed it */
#define VEIL_CT_F_SEEN_REPLY (1u << 2) /* a reply was seen (TCP: the handshake completed) */
#define VEIL_CT_F_CLOSING (1u << 3) /* TCP FIN or RST seen: short lifetime */

/* Lifetimes (seconds). */
#define VEIL_CT_LIFETIME_TCP_SYN 60 /* opened, no reply yet */
#define VEIL_CT_LIFETIME_TCP 21600 /* established */
#define VEIL_CT_LIFETIME_TCP_CLOSING 10
#define VEIL_CT_LIFETIME_NONTCP 60 /* UDP, ICMP, other */

struct veil_ct4_key {
	__u8 saddr[4];
	__u8 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
}; /* 16 bytes */

struct veil_ct6_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
}; /* 40 bytes */

struct veil_ct_entry {
	__u64 expires_ns; /* bpf_ktime_get_ns() after which the entry is dead */
	__u32 src_identity; /* initiator */
	__u32 dst_identity; /* responder */
	__u8 flags; /* VEIL_CT_F_* */
	__u8 pad[7];
}; /* 24 bytes */

#endif /* VEIL_CONNTRACK_H */
