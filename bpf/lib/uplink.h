/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Strict mode on the node's uplink. Encrypted traffic carries node addresses outside (WireGuard's
 * UDP, tunnel-mode ESP), so a pod address on the uplink means plaintext pod traffic:
 * - egress: a packet from a pod address (ipcache VEIL_IPC_F_POD) leaving -> drop;
 * - ingress: a packet to a pod address arriving, neither ESP nor already decrypted by XFRM
 *   (which re-injects the inner packet on the same device, marked VEIL_MARK_DECRYPTED) -> drop.
 * Without VEIL_CFG_F_STRICT both pass everything.
 */
#ifndef VEIL_LIB_UPLINK_H
#define VEIL_LIB_UPLINK_H

#include "maps.h"
#include "parse.h"
#include "ipcache.h"
#include "steer.h"
#include "metrics.h"

/* Parses for the uplink: a packet whose addresses were read is judged on them even when its L4
 * header is cut short. Returns 0 to judge, > 0 to pass with that reason, < 0 to drop. */
static __always_inline int veil_uplink_parse(struct __sk_buff *skb, struct veil_pkt *p)
{
	int ret = veil_parse(skb, p);

	if (ret == VEIL_FWD_NOT_IP)
		return VEIL_FWD_NOT_IP;
	if (ret < 0 && p->t.family == 0)
		return ret;
	return 0;
}

static __always_inline int veil_uplink_egress(struct __sk_buff *skb, struct veil_pkt *p,
					      __u32 *src_id, __u32 *dst_id)
{
	struct veil_config *cfg = veil_config_get();
	struct veil_ipcache_entry *src;
	int ret;

	if (!cfg || !(cfg->flags & VEIL_CFG_F_STRICT))
		return VEIL_FWD_UPLINK;
	ret = veil_uplink_parse(skb, p);
	if (ret != 0)
		return ret;
	if (p->t.proto == VEIL_IPPROTO_ESP)
		return VEIL_FWD_UPLINK;
	src = veil_ipcache_lookup(p->t.family, p->t.saddr);
	if (src && (src->flags & VEIL_IPC_F_POD)) {
		*src_id = src->identity;
		*dst_id = veil_ipcache_identity(veil_ipcache_lookup(p->t.family, p->t.daddr));
		return -VEIL_DROP_STRICT_EGRESS;
	}
	return VEIL_FWD_UPLINK;
}

static __always_inline int veil_uplink_ingress(struct __sk_buff *skb, struct veil_pkt *p,
					       __u32 *src_id, __u32 *dst_id)
{
	struct veil_config *cfg = veil_config_get();
	struct veil_ipcache_entry *dst;
	int ret;

	if (!cfg || !(cfg->flags & VEIL_CFG_F_STRICT))
		return VEIL_FWD_UPLINK;
	ret = veil_uplink_parse(skb, p);
	if (ret != 0)
		return ret;
	if (p->t.proto == VEIL_IPPROTO_ESP)
		return VEIL_FWD_UPLINK;
	if ((skb->mark & VEIL_MARK_PURPOSE_MASK) == VEIL_MARK_DECRYPTED)
		return VEIL_FWD_UPLINK;
	dst = veil_ipcache_lookup(p->t.family, p->t.daddr);
	if (dst && (dst->flags & VEIL_IPC_F_POD)) {
		*dst_id = dst->identity;
		*src_id = veil_ipcache_identity(veil_ipcache_lookup(p->t.family, p->t.saddr));
		return -VEIL_DROP_STRICT_INGRESS;
	}
	return VEIL_FWD_UPLINK;
}

#endif /* VEIL_LIB_UPLINK_H */
