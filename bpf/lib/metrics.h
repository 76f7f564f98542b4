/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Per-CPU counters by (hook, reason) and ring-buffer events. Every outcome is counted; every
 * drop and every new connection also emits an event (a full ring buffer loses the event, never
 * the count).
 */
#ifndef VEIL_LIB_METRICS_H
#define VEIL_LIB_METRICS_H

#include "maps.h"
#include "parse.h"

static __always_inline void veil_count(__u32 hook, __u32 reason, __u32 bytes)
{
	__u32 idx = hook * VEIL_REASON_MAX + reason;
	struct veil_counter *c;

	if (idx >= VEIL_HOOK_MAX * VEIL_REASON_MAX)
		return;
	c = bpf_map_lookup_elem(&veil_counters, &idx);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline void veil_emit(struct __sk_buff *skb, __u8 hook, __u8 type, __u8 reason,
				      __u32 src_identity, __u32 dst_identity,
				      const struct veil_pkt *p)
{
	struct veil_event *e = bpf_ringbuf_reserve(&veil_events, sizeof(*e), 0);

	if (!e)
		return;
	e->timestamp_ns = bpf_ktime_get_ns();
	e->src_identity = src_identity;
	e->dst_identity = dst_identity;
	e->ifindex = skb->ifindex;
	e->type = type;
	e->reason = reason;
	e->hook = hook;
	e->family = p->t.family;
	e->proto = p->t.proto;
	e->pad[0] = 0;
	e->pad[1] = 0;
	e->pad[2] = 0;
	if (p->t.proto == VEIL_IPPROTO_ICMP || p->t.proto == VEIL_IPPROTO_ICMPV6) {
		e->sport = p->echo_id;
		e->dport = (__u16)p->icmp_type << 8 | p->icmp_code;
	} else {
		e->sport = p->t.sport;
		e->dport = p->t.dport;
	}
	__builtin_memcpy(e->saddr, p->t.saddr, 16);
	__builtin_memcpy(e->daddr, p->t.daddr, 16);
	bpf_ringbuf_submit(e, 0);
}

/* Counts a forwarding outcome (reason > 0). */
static __always_inline void veil_account_pass(struct __sk_buff *skb, __u8 hook, int reason)
{
	veil_count(hook, reason, skb->len);
}

/* Counts a drop (reason = VEIL_DROP_*) and emits its event. */
static __always_inline void veil_account_drop(struct __sk_buff *skb, __u8 hook, int reason,
					      __u32 src_identity, __u32 dst_identity,
					      const struct veil_pkt *p)
{
	veil_count(hook, reason, skb->len);
	veil_emit(skb, hook, VEIL_EVENT_DROP, reason, src_identity, dst_identity, p);
}

#endif /* VEIL_LIB_METRICS_H */
