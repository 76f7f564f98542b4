/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Where an admitted pod packet goes: a local pod or the host (the kernel routes it), or a remote
 * pod, which is only ever reached encrypted: redirected into the WireGuard device of the
 * destination node's channel, or marked for XFRM (include/veil/marks.h). With neither available
 * the packet is dropped, never sent in plaintext.
 */
#ifndef VEIL_LIB_STEER_H
#define VEIL_LIB_STEER_H

#include <linux/pkt_cls.h>
#include "maps.h"
#include "../include/veil/marks.h"

static __always_inline struct veil_config *veil_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&veil_config, &zero);
}

/* A pod on another node: only reachable through the tunnel. */
static __always_inline int veil_is_remote_pod(const struct veil_ipcache_entry *dst)
{
	return dst && (dst->flags & VEIL_IPC_F_POD) && !(dst->flags & VEIL_IPC_F_LOCAL);
}

/* Will from-pod send this packet encrypted (for require-encryption egress rules)? */
static __always_inline int veil_will_encrypt(const struct veil_config *cfg,
					     const struct veil_ipcache_entry *dst)
{
	return veil_is_remote_pod(dst) &&
	       (cfg->flags & (VEIL_CFG_F_MODE_WIREGUARD | VEIL_CFG_F_MODE_IPSEC));
}

/* Will the packet carry the sender's identity in its IPsec SA (per-identity keys)? */
static __always_inline int veil_will_authenticate(const struct veil_config *cfg,
						  const struct veil_ipcache_entry *dst)
{
	return veil_is_remote_pod(dst) && (cfg->flags & VEIL_CFG_F_MODE_IPSEC) &&
	       !(cfg->flags & VEIL_CFG_F_MODE_WIREGUARD);
}

/*
 * The IPsec key slot of an SA (agent/reconcile/ipsec-marks.ts keySlot): the sender's identity key
 * generation (the endpoint's key_generation) mod 4 in the high two bits, the receiver's node key
 * generation (the destination's ipcache key_slot) mod 4 in the low two.
 */
static __always_inline __u32 veil_ipsec_key_slot(__u8 sender_generation, __u8 receiver_slot)
{
	return ((__u32)(sender_generation & 3) << 2) | (receiver_slot & 3);
}

/*
 * Steers an admitted packet from a pod of identity `src_identity` whose identity key sends with
 * generation `src_generation` (endpoint map; IPsec mode only). Returns VEIL_FWD_LOCAL,
 * VEIL_FWD_HOST, VEIL_FWD_WIREGUARD (bpf_redirect already called: the entry point must return
 * TC_ACT_REDIRECT), VEIL_FWD_IPSEC (skb->mark set), or -VEIL_DROP_NO_TUNNEL.
 */
static __always_inline int veil_steer(struct __sk_buff *skb, const struct veil_config *cfg,
				      __u32 src_identity, __u8 src_generation,
				      const struct veil_ipcache_entry *dst)
{
	if (!dst || !(dst->flags & VEIL_IPC_F_POD))
		return VEIL_FWD_HOST;
	if (dst->flags & VEIL_IPC_F_LOCAL)
		return VEIL_FWD_LOCAL;
	if (cfg->flags & VEIL_CFG_F_MODE_WIREGUARD) {
		__u32 ifindex = cfg->wireguard_ifindex[dst->key_slot & 1];

		if (!ifindex)
			return -VEIL_DROP_NO_TUNNEL;
		bpf_redirect(ifindex, 0);
		return VEIL_FWD_WIREGUARD;
	}
	if (cfg->flags & VEIL_CFG_F_MODE_IPSEC) {
		skb->mark = (skb->mark & ~VEIL_MARK_MATCH_MASK) | VEIL_MARK_ENCRYPT |
			    (src_identity << VEIL_MARK_IDENTITY_SHIFT) |
			    ((veil_ipsec_key_slot(src_generation, dst->key_slot) << VEIL_MARK_KEY_SLOT_SHIFT) &
			     VEIL_MARK_KEY_SLOT_MASK);
		return VEIL_FWD_IPSEC;
	}
	return -VEIL_DROP_NO_TUNNEL;
}

/* TC verdict of a forwarding outcome. */
static __always_inline int veil_tc_pass(int reason)
{
	return reason == VEIL_FWD_WIREGUARD ? TC_ACT_REDIRECT : TC_ACT_OK;
}

#endif /* VEIL_LIB_STEER_H */
