/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Fragments: only the first fragment of a datagram carries the L4 header. When a program admits
 * a first fragment it remembers the datagram (addresses, protocol, IP id) with its ports; later
 * fragments of that datagram take those ports and meet the same conntrack entry and steering.
 * A later fragment of a datagram whose first fragment was not admitted (or not seen, or seen more
 * than VEIL_FRAG_LIFETIME ago) is dropped (VEIL_DROP_FRAGMENT). One table per loaded object, not
 * pinned: each hook sees all fragments of the datagrams it handles, and an entry is worth
 * seconds.
 */
#ifndef VEIL_LIB_FRAGMENTS_H
#define VEIL_LIB_FRAGMENTS_H

#include "maps.h"
#include "parse.h"

#define VEIL_FRAG_LIFETIME_NS (30ull * 1000000000ull)

struct veil_frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct veil_frag_entry {
	__u64 expires_ns;
	__u16 sport;
	__u16 dport;
	__u8 flags; /* VEIL_PKT_F_HAS_PORTS of the first fragment */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct veil_frag_key);
	__type(value, struct veil_frag_entry);
} veil_frags SEC(".maps");

static __always_inline void veil_frag_key(const struct veil_pkt *p, struct veil_frag_key *k)
{
	__builtin_memcpy(k->saddr, p->t.saddr, 16);
	__builtin_memcpy(k->daddr, p->t.daddr, 16);
	k->id = p->frag_id;
	k->proto = p->t.proto;
	k->family = p->t.family;
}

/* After a first fragment was admitted: remember its ports for the rest of the datagram. */
static __always_inline void veil_frag_remember(const struct veil_pkt *p)
{
	struct veil_frag_key k = {};
	struct veil_frag_entry e = {
		.expires_ns = bpf_ktime_get_coarse_ns() + VEIL_FRAG_LIFETIME_NS,
		.sport = p->t.sport,
		.dport = p->t.dport,
		.flags = p->flags & VEIL_PKT_F_HAS_PORTS,
	};

	veil_frag_key(p, &k);
	bpf_map_update_elem(&veil_frags, &k, &e, BPF_ANY);
}

/* A later fragment: its datagram's ports into p. 0, or -VEIL_DROP_FRAGMENT when unknown. */
static __always_inline int veil_frag_resolve(struct veil_pkt *p, __u64 now)
{
	struct veil_frag_key k = {};
	struct veil_frag_entry *e;

	veil_frag_key(p, &k);
	e = bpf_map_lookup_elem(&veil_frags, &k);
	if (!e || e->expires_ns <= now)
		return -VEIL_DROP_FRAGMENT;
	p->t.sport = e->sport;
	p->t.dport = e->dport;
	p->flags |= e->flags;
	return 0;
}

#endif /* VEIL_LIB_FRAGMENTS_H */
