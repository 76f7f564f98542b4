/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Policy verdict for a new connection. Lookup order and "deny wins" are defined in
 * include/veil/maps.h: most specific key first, first hit wins, denies already folded in by the
 * compiler (agent/datapath/policy-compile.ts).
 */
#ifndef VEIL_LIB_POLICY_H
#define VEIL_LIB_POLICY_H

#include "maps.h"
#include "parse.h"

struct veil_policy_query {
	__u32 subject; /* the local pod's identity */
	__u32 peer; /* the other side's identity */
	__u8 direction; /* VEIL_DIR_* */
	__u8 enforced; /* the subject is isolated in this direction: no hit = deny */
	__u8 encrypted; /* the packet was (ingress) or will be (egress) encrypted between nodes */
	__u8 authenticated; /* the peer identity was authenticated by the kernel (IPsec mark) */
};

static __always_inline struct veil_policy_value *veil_policy_find(const struct veil_policy_query *q,
								  const struct veil_pkt *p)
{
	struct veil_policy_key k = { .subject = q->subject, .direction = q->direction };
	struct veil_policy_value *v;
	__u16 port = (p->flags & VEIL_PKT_F_HAS_PORTS) ? p->t.dport : 0;
	__u32 peers[2] = { q->peer, 0 };

#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (i == 1 && q->peer == 0)
			break; /* the wildcard keys were just tried */
		k.peer = peers[i];
		if (port) {
			k.proto = p->t.proto;
			k.dport = port;
			v = bpf_map_lookup_elem(&veil_policy, &k);
			if (v)
				return v;
		}
		k.dport = 0;
		k.proto = p->t.proto;
		v = bpf_map_lookup_elem(&veil_policy, &k);
		if (v)
			return v;
		k.proto = 0;
		v = bpf_map_lookup_elem(&veil_policy, &k);
		if (v)
			return v;
	}
	return NULL;
}

/* 0 when the policy admits the packet, else -VEIL_DROP_POLICY_* / -VEIL_DROP_REQUIRES_*. */
static __always_inline int veil_policy_check(const struct veil_policy_query *q,
					     const struct veil_pkt *p)
{
	struct veil_policy_value *v = veil_policy_find(q, p);

	if (!v)
		return q->enforced ? -VEIL_DROP_POLICY_DEFAULT_DENY : 0;
	if (v->verdict != VEIL_VERDICT_ALLOW)
		return -VEIL_DROP_POLICY_DENY;
	if ((v->flags & VEIL_POL_F_REQUIRE_ENCRYPTION) && !q->encrypted)
		return -VEIL_DROP_REQUIRES_ENCRYPTION;
	if ((v->flags & VEIL_POL_F_REQUIRE_AUTH_IDENTITY) && !q->authenticated)
		return -VEIL_DROP_REQUIRES_AUTH_IDENTITY;
	return 0;
}

#endif /* VEIL_LIB_POLICY_H */
