/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Connection tracking: Veil's own LRU tables (one per family, pinned, layouts in
 * include/veil/conntrack.h). Why our own table rather than the kernel's conntrack kfuncs:
 * docs/datapath.md §Connection tracking.
 */
#ifndef VEIL_LIB_CONNTRACK_H
#define VEIL_LIB_CONNTRACK_H

#include "maps.h"
#include "parse.h"
#include "../include/veil/conntrack.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct veil_ct4_key);
	__type(value, struct veil_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct veil_ct6_key);
	__type(value, struct veil_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_ct6 SEC(".maps");

#define VEIL_CT_FORWARD 1
#define VEIL_CT_REPLY 2

#define VEIL_NS_PER_SEC 1000000000ull

/* The key of `t` (reply = swapped addresses and ports) into k4 or k6 by family. */
static __always_inline void veil_ct_key(const struct veil_tuple *t, int reply,
					struct veil_ct4_key *k4, struct veil_ct6_key *k6)
{
	if (t->family == VEIL_AF_INET) {
		__builtin_memcpy(k4->saddr, reply ? t->daddr : t->saddr, 4);
		__builtin_memcpy(k4->daddr, reply ? t->saddr : t->daddr, 4);
		k4->sport = reply ? t->dport : t->sport;
		k4->dport = reply ? t->sport : t->dport;
		k4->proto = t->proto;
	} else {
		__builtin_memcpy(k6->saddr, reply ? t->daddr : t->saddr, 16);
		__builtin_memcpy(k6->daddr, reply ? t->saddr : t->daddr, 16);
		k6->sport = reply ? t->dport : t->sport;
		k6->dport = reply ? t->sport : t->dport;
		k6->proto = t->proto;
	}
}

static __always_inline struct veil_ct_entry *veil_ct_get(const struct veil_tuple *t, int reply,
							 __u64 now)
{
	struct veil_ct4_key k4 = {};
	struct veil_ct6_key k6 = {};
	struct veil_ct_entry *e;

	veil_ct_key(t, reply, &k4, &k6);
	if (t->family == VEIL_AF_INET)
		e = bpf_map_lookup_elem(&veil_ct4, &k4);
	else
		e = bpf_map_lookup_elem(&veil_ct6, &k6);
	if (e && e->expires_ns <= now)
		return NULL; /* dead: the sweep or the LRU will remove it */
	return e;
}

/*
 * The live entry `t` belongs to: *dir = VEIL_CT_FORWARD when `t` is the opening direction,
 * VEIL_CT_REPLY when it is the reverse; NULL when the connection is not tracked.
 */
static __always_inline struct veil_ct_entry *veil_ct_lookup(const struct veil_tuple *t, __u64 now,
							    int *dir)
{
	struct veil_ct_entry *e = veil_ct_get(t, 0, now);

	if (e) {
		*dir = VEIL_CT_FORWARD;
		return e;
	}
	e = veil_ct_get(t, 1, now);
	if (e)
		*dir = VEIL_CT_REPLY;
	return e;
}

/* Lifetime of an entry after a packet with these TCP flags (0 for non-TCP). */
static __always_inline __u64 veil_ct_lifetime(const struct veil_ct_entry *e, __u8 proto)
{
	if (proto != VEIL_IPPROTO_TCP)
		return VEIL_CT_LIFETIME_NONTCP * VEIL_NS_PER_SEC;
	if (e->flags & VEIL_CT_F_CLOSING)
		return VEIL_CT_LIFETIME_TCP_CLOSING * VEIL_NS_PER_SEC;
	if (e->flags & VEIL_CT_F_SEEN_REPLY)
		return VEIL_CT_LIFETIME_TCP * VEIL_NS_PER_SEC;
	return VEIL_CT_LIFETIME_TCP_SYN * VEIL_NS_PER_SEC;
}

/* Updates a live entry for a packet of direction `dir` and admitting side `admit_flag`. */
static __always_inline void veil_ct_refresh(struct veil_ct_entry *e, const struct veil_pkt *p,
					    int dir, __u8 admit_flag, __u64 now)
{
	__u8 flags = e->flags | admit_flag;
	__u64 expires;

	if (dir == VEIL_CT_REPLY)
		flags |= VEIL_CT_F_SEEN_REPLY;
	if (p->tcp_flags & (VEIL_TCP_FIN | VEIL_TCP_RST))
		flags |= VEIL_CT_F_CLOSING;
	if (flags != e->flags)
		e->flags = flags;
	expires = now + veil_ct_lifetime(e, p->t.proto);
	/* write only when it moves by more than a second: keeps the cache line clean */
	if (expires > e->expires_ns + VEIL_NS_PER_SEC || expires < e->expires_ns)
		e->expires_ns = expires;
}

/* Opens an entry for `p` (forward direction). 0, or -VEIL_DROP_CT_FULL. */
static __always_inline int veil_ct_create(const struct veil_pkt *p, __u32 src_identity,
					  __u32 dst_identity, __u8 admit_flag, __u64 now)
{
	struct veil_ct4_key k4 = {};
	struct veil_ct6_key k6 = {};
	struct veil_ct_entry e = {
		.src_identity = src_identity,
		.dst_identity = dst_identity,
		.flags = admit_flag,
	};
	long err;

	if (p->tcp_flags & (VEIL_TCP_FIN | VEIL_TCP_RST))
		e.flags |= VEIL_CT_F_CLOSING;
	e.expires_ns = now + veil_ct_lifetime(&e, p->t.proto);
	veil_ct_key(&p->t, 0, &k4, &k6);
	if (p->t.family == VEIL_AF_INET)
		err = bpf_map_update_elem(&veil_ct4, &k4, &e, BPF_ANY);
	else
		err = bpf_map_update_elem(&veil_ct6, &k6, &e, BPF_ANY);
	return err ? -VEIL_DROP_CT_FULL : 0;
}

/*
 * An ICMP error is related to a tracked connection when the packet it quotes belongs to one,
 * and the error goes back to that packet's sender.
 */
static __always_inline int veil_ct_related(const struct veil_pkt *p, __u64 now)
{
	int dir;

	if (!(p->flags & VEIL_PKT_F_ICMP_ERROR))
		return 0;
	if (!veil_addr_eq(p->inner.saddr, p->t.daddr, 16))
		return 0;
	return veil_ct_lookup(&p->inner, now, &dir) != NULL;
}

#endif /* VEIL_LIB_CONNTRACK_H */
