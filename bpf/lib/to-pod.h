/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * to-pod: tc egress on the host side of a pod's veth (packets delivered to the pod).
 * The source identity comes from the decrypted-packet mark an inbound IPsec SA set (the kernel
 * authenticated it with the SA's key), else from the ipcache. A packet counts as encrypted when it
 * carries that mark or entered the node through one of the WireGuard devices.
 */
#ifndef VEIL_LIB_TO_POD_H
#define VEIL_LIB_TO_POD_H

#include "maps.h"
#include "parse.h"
#include "ipcache.h"
#include "policy.h"
#include "conntrack.h"
#include "metrics.h"
#include "steer.h"
#include "fragments.h"

static __always_inline int veil_to_pod_judge(struct __sk_buff *skb, struct veil_pkt *p, __u32 *src_id,
				       __u32 *dst_id)
{
	struct veil_endpoint_key ek = { .ifindex = skb->ifindex };
	struct veil_endpoint *ep;
	struct veil_config *cfg;
	struct veil_ct_entry *ct;
	struct veil_policy_query q = {};
	__u32 mark = skb->mark;
	__u64 now;
	int dir = 0, ret;

	ret = veil_parse(skb, p);
	if (ret < 0)
		return ret;
	if (ret == VEIL_FWD_NOT_IP)
		return p->eth_proto == ETH_P_ARP ? VEIL_FWD_NOT_IP : -VEIL_DROP_UNSUPPORTED_L3;
	ep = bpf_map_lookup_elem(&veil_endpoints, &ek);
	if (!ep)
		return -VEIL_DROP_UNKNOWN_ENDPOINT;
	*dst_id = ep->identity;
	if (p->flags & VEIL_PKT_F_NDP)
		return VEIL_FWD_TO_POD;
	now = bpf_ktime_get_coarse_ns();
	if ((p->flags & VEIL_PKT_F_LATER_FRAGMENT) && veil_frag_resolve(p, now) < 0)
		return -VEIL_DROP_FRAGMENT;
	cfg = veil_config_get();
	if (!cfg)
		return -VEIL_DROP_NO_TUNNEL;

	if ((mark & VEIL_MARK_PURPOSE_MASK) == VEIL_MARK_DECRYPTED) {
		q.encrypted = 1;
		/* identity 0: a per-node-pair SA, which authenticates the node, not the pod */
		*src_id = mark >> VEIL_MARK_IDENTITY_SHIFT;
		q.authenticated = *src_id != 0;
	} else if (skb->ingress_ifindex != 0 &&
		   (skb->ingress_ifindex == cfg->wireguard_ifindex[0] ||
		    skb->ingress_ifindex == cfg->wireguard_ifindex[1])) {
		q.encrypted = 1;
	}
	if (!q.authenticated) {
		struct veil_ipcache_entry *src = veil_ipcache_lookup(p->t.family, p->t.saddr);

		if (src && src->identity == 0)
			return -VEIL_DROP_UNKNOWN_IDENTITY;
		*src_id = veil_ipcache_identity(src);
	}

	ct = veil_ct_lookup(&p->t, now, &dir);
	if (ct && ((dir == VEIL_CT_FORWARD && (ct->flags & VEIL_CT_F_INGRESS_OK)) ||
		   (dir == VEIL_CT_REPLY && (ct->flags & VEIL_CT_F_EGRESS_OK)))) {
		veil_ct_refresh(ct, p, dir, 0, now);
		return VEIL_FWD_TO_POD;
	}
	if (veil_ct_related(p, now))
		return VEIL_FWD_TO_POD;

	q.subject = ep->identity;
	q.peer = *src_id;
	q.direction = VEIL_DIR_INGRESS;
	q.enforced = (ep->flags & VEIL_EP_F_ENFORCE_INGRESS) != 0;
	ret = veil_policy_check(&q, p);
	if (ret < 0)
		return ret;
	if (p->flags & VEIL_PKT_F_ICMP_ERROR)
		return VEIL_FWD_TO_POD;
	if (ct && dir == VEIL_CT_FORWARD) {
		veil_ct_refresh(ct, p, dir, VEIL_CT_F_INGRESS_OK, now);
	} else {
		int err = veil_ct_create(p, *src_id, ep->identity, VEIL_CT_F_INGRESS_OK, now);

		if (err < 0)
			return err;
		veil_emit(skb, VEIL_HOOK_TO_POD, VEIL_EVENT_FLOW_NEW, VEIL_FWD_TO_POD, *src_id,
			  ep->identity, p);
	}
	return VEIL_FWD_TO_POD;
}

/* The judgement, plus: an admitted first fragment lets the rest of its datagram follow. */
static __always_inline int veil_to_pod(struct __sk_buff *skb, struct veil_pkt *p, __u32 *src_id,
                                      __u32 *dst_id)
{
	int ret = veil_to_pod_judge(skb, p, src_id, dst_id);

	if (ret >= 0 && (p->flags & VEIL_PKT_F_FIRST_FRAGMENT))
		veil_frag_remember(p);
	return ret;
}

#endif /* VEIL_LIB_TO_POD_H */
