/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * from-pod: tc ingress on the host side of a pod's veth (packets the pod sends).
 * Order: parse -> endpoint -> anti-spoof -> destination in the ipcache -> conntrack (established
 * and reply packets skip policy) -> egress policy -> conntrack entry -> steer.
 */
#ifndef VEIL_LIB_FROM_POD_H
#define VEIL_LIB_FROM_POD_H

#include "maps.h"
#include "parse.h"
#include "ipcache.h"
#include "policy.h"
#include "conntrack.h"
#include "metrics.h"
#include "steer.h"
#include "fragments.h"

/* The packet's source is one of the endpoint's own addresses. */
static __always_inline int veil_ep_owns_source(const struct veil_endpoint *ep,
					       const struct veil_pkt *p)
{
	if (p->t.family == VEIL_AF_INET)
		return (ep->flags & VEIL_EP_F_HAS_IPV4) && veil_addr_eq(p->t.saddr, ep->ipv4, 4);
	return (ep->flags & VEIL_EP_F_HAS_IPV6) && veil_addr_eq(p->t.saddr, ep->ipv6, 16);
}

/*
 * Returns a VEIL_FWD_* reason or -VEIL_DROP_*; *src_id and *dst_id are set as soon as known
 * (for the drop event).
 */
static __always_inline int veil_from_pod_judge(struct __sk_buff *skb, struct veil_pkt *p, __u32 *src_id,
					 __u32 *dst_id)
{
	struct veil_endpoint_key ek = { .ifindex = skb->ifindex };
	struct veil_endpoint *ep;
	struct veil_ipcache_entry *dst;
	struct veil_config *cfg;
	struct veil_ct_entry *ct;
	struct veil_policy_query q;
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
	*src_id = ep->identity;
	/* neighbour discovery and MLD stay between the pod and its node (link-local sources) */
	if (p->flags & VEIL_PKT_F_NDP)
		return VEIL_FWD_HOST;
	if (!veil_ep_owns_source(ep, p))
		return -VEIL_DROP_SPOOFED_SOURCE;
	now = bpf_ktime_get_coarse_ns();
	if ((p->flags & VEIL_PKT_F_LATER_FRAGMENT) && veil_frag_resolve(p, now) < 0)
		return -VEIL_DROP_FRAGMENT;
	cfg = veil_config_get();
	if (!cfg)
		return -VEIL_DROP_NO_TUNNEL;
	dst = veil_ipcache_lookup(p->t.family, p->t.daddr);
	*dst_id = veil_ipcache_identity(dst);

	ct = veil_ct_lookup(&p->t, now, &dir);
	if (ct && ((dir == VEIL_CT_FORWARD && (ct->flags & VEIL_CT_F_EGRESS_OK)) ||
		   (dir == VEIL_CT_REPLY && (ct->flags & VEIL_CT_F_INGRESS_OK)))) {
		veil_ct_refresh(ct, p, dir, 0, now);
		return veil_steer(skb, cfg, ep->identity, ep->key_generation, dst);
	}
	if (veil_ct_related(p, now))
		return veil_steer(skb, cfg, ep->identity, ep->key_generation, dst);

	q.subject = ep->identity;
	q.peer = *dst_id;
	q.direction = VEIL_DIR_EGRESS;
	q.enforced = (ep->flags & VEIL_EP_F_ENFORCE_EGRESS) != 0;
	q.encrypted = veil_will_encrypt(cfg, dst) != 0;
	q.authenticated = veil_will_authenticate(cfg, dst) != 0;
	ret = veil_policy_check(&q, p);
	if (ret < 0)
		return ret;
	ret = veil_steer(skb, cfg, ep->identity, ep->key_generation, dst);
	if (ret < 0)
		return ret;
	if (p->flags & VEIL_PKT_F_ICMP_ERROR)
		return ret; /* errors never open connections */
	if (ct && dir == VEIL_CT_FORWARD) {
		veil_ct_refresh(ct, p, dir, VEIL_CT_F_EGRESS_OK, now);
	} else {
		int err = veil_ct_create(p, ep->identity, *dst_id, VEIL_CT_F_EGRESS_OK, now);

		if (err < 0)
			return err;
		veil_emit(skb, VEIL_HOOK_FROM_POD, VEIL_EVENT_FLOW_NEW, ret, ep->identity, *dst_id, p);
	}
	return ret;
}

/* The judgement, plus: an admitted first fragment lets the rest of its datagram follow. */
static __always_inline int veil_from_pod(struct __sk_buff *skb, struct veil_pkt *p, __u32 *src_id,
                                        __u32 *dst_id)
{
	int ret = veil_from_pod_judge(skb, p, src_id, dst_id);

	if (ret >= 0 && (p->flags & VEIL_PKT_F_FIRST_FRAGMENT))
		veil_frag_remember(p);
	return ret;
}

#endif /* VEIL_LIB_FROM_POD_H */
