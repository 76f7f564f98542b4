/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Packet parsing for the tc programs: Ethernet, IPv4 / IPv6 (with a bounded walk over IPv6
 * extension headers), TCP / UDP / SCTP ports, ICMP / ICMPv6 type, echo id and, for ICMP errors,
 * the tuple of the packet the error is about. Headers are read with veil_load(): directly from
 * the linear data when there, else with bpf_skb_load_bytes, so non-linear skbs and truncated
 * frames are handled alike: a header that is not all there is an invalid packet, never an
 * out-of-bounds read.
 */
#ifndef VEIL_LIB_PARSE_H
#define VEIL_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "../include/veil/maps.h"
#include "../include/veil/reasons.h"

#define VEIL_IPPROTO_HOPOPTS 0
#define VEIL_IPPROTO_ICMP 1
#define VEIL_IPPROTO_TCP 6
#define VEIL_IPPROTO_UDP 17
#define VEIL_IPPROTO_ROUTING 43
#define VEIL_IPPROTO_FRAGMENT 44
#define VEIL_IPPROTO_ESP 50
#define VEIL_IPPROTO_AH 51
#define VEIL_IPPROTO_ICMPV6 58
#define VEIL_IPPROTO_DSTOPTS 60
#define VEIL_IPPROTO_SCTP 132

#define VEIL_IPV6_MAX_EXT_HEADERS 4

/* Packet facts (veil_pkt.flags). */
#define VEIL_PKT_F_HAS_PORTS (1u << 0) /* TCP, UDP or SCTP: ports are real ports */
#define VEIL_PKT_F_ICMP_ERROR (1u << 1) /* ICMP(v6) error; `inner` holds the offending tuple */
/* ICMPv6 neighbour discovery (hop limit 255) or multicast listener messages to a link-scope
 * destination: traffic between a pod and its node that the kernel never forwards */
#define VEIL_PKT_F_NDP (1u << 2)
#define VEIL_PKT_F_LATER_FRAGMENT (1u << 3) /* non-first fragment: no L4 header, ports are 0 */
#define VEIL_PKT_F_FIRST_FRAGMENT (1u << 4) /* first fragment of several: frag_id is set */

/* A connection tuple. Ports in host order; for ICMP echo the id sits in sport (request) or
 * dport (reply) so that a reply's swapped tuple equals its request's tuple. */
struct veil_tuple {
	__u8 saddr[16]; /* IPv4: first 4 bytes, rest zero */
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family; /* VEIL_AF_* */
	__u8 proto;
	__u8 pad[2];
} __attribute__((aligned(8)));

struct veil_pkt {
	struct veil_tuple t;
	struct veil_tuple inner; /* VEIL_PKT_F_ICMP_ERROR only */
	__u16 eth_proto; /* host order */
	__u8 flags; /* VEIL_PKT_F_* */
	__u8 tcp_flags; /* TCP only */
	__u8 icmp_type;
	__u8 icmp_code;
	__u16 echo_id; /* ICMP echo only */
	__u32 frag_id; /* fragments: IPv4 identification or IPv6 fragment header id */
	__u8 hop_limit; /* IPv6 hop limit (IPv4: TTL) */
	__u8 pad[3];
};

/* Equality of `len` (4 or 16) address bytes. Both must be 4-byte aligned: the tuple's addresses
 * are (struct veil_tuple is 8-byte aligned), and so are the endpoint's (offsets 8 and 12 of a map
 * value). Compared as 32-bit words. */
static __always_inline int veil_addr_eq(const __u8 *a, const __u8 *b, int len)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;

	if (len == 4)
		return x[0] == y[0];
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

#define VEIL_TCP_FIN 0x01
#define VEIL_TCP_SYN 0x02
#define VEIL_TCP_RST 0x04
#define VEIL_TCP_ACK 0x10

/* An IPv4 header, read as bytes (no bitfields: their layout is the compiler's choice). */
struct veil_ip4 {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 proto;
	__be16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct veil_ip6 {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * Copies `len` bytes at `off` of the packet to `to`: straight from the linear data when they are
 * there (the common case, and no helper call), else through bpf_skb_load_bytes (non-linear skb).
 * Returns 0, or < 0 when the packet is shorter than off + len.
 */
/* skb->data / skb->data_end loaded straight from the context register: left to itself, clang may
 * keep &skb->data_end in a register and load through it, which the verifier refuses. */
#define VEIL_CTX_U32(skb, field)                                                        \
	({                                                                              \
		__u64 __v;                                                              \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                                   \
			     : "=r"(__v)                                                \
			     : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, field))); \
		(void *)(long)__v;                                                      \
	})

static __always_inline int veil_load(struct __sk_buff *skb, __u32 off, void *to, __u32 len)
{
	void *data = VEIL_CTX_U32(skb, data);
	void *end = VEIL_CTX_U32(skb, data_end);

	if (off < 0x1000 && data + off + len <= end) {
		__builtin_memcpy(to, data + off, len);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

static __always_inline int veil_is_icmp4_error(__u8 type)
{
	return type == 3 /* dest unreachable */ || type == 11 /* time exceeded */ ||
	       type == 12 /* parameter problem */;
}

static __always_inline int veil_is_icmp6_error(__u8 type)
{
	return type >= 1 && type <= 4; /* unreachable, too big, time exceeded, parameter problem */
}

/*
 * Ports (or echo id) of the L4 header at `off` into `t`. `inner`: the header belongs to the
 * packet quoted in an ICMP error, of which only 8 bytes are guaranteed, and which is not
 * itself an error. Returns 0, or -VEIL_DROP_INVALID_PACKET when the header is cut short.
 */
static __always_inline int veil_parse_ports(struct __sk_buff *skb, __u32 off, struct veil_tuple *t,
					    struct veil_pkt *p, int inner)
{
	__u8 l4[14];

	switch (t->proto) {
	case VEIL_IPPROTO_TCP:
		if (inner) {
			if (bpf_skb_load_bytes(skb, off, l4, 4))
				return -VEIL_DROP_INVALID_PACKET;
		} else {
			/* the fixed header is 20 bytes; flags sit in byte 13 */
			if (off + 20 > skb->len || veil_load(skb, off, l4, 14))
				return -VEIL_DROP_INVALID_PACKET;
			p->tcp_flags = l4[13];
			p->flags |= VEIL_PKT_F_HAS_PORTS;
		}
		t->sport = (__u16)l4[0] << 8 | l4[1];
		t->dport = (__u16)l4[2] << 8 | l4[3];
		return 0;
	case VEIL_IPPROTO_UDP:
	case VEIL_IPPROTO_SCTP:
		/* UDP: 8-byte header; SCTP: 12-byte common header; ports first in both */
		if (!inner && off + (t->proto == VEIL_IPPROTO_UDP ? 8 : 12) > skb->len)
			return -VEIL_DROP_INVALID_PACKET;
		if (veil_load(skb, off, l4, 4))
			return -VEIL_DROP_INVALID_PACKET;
		if (!inner)
			p->flags |= VEIL_PKT_F_HAS_PORTS;
		t->sport = (__u16)l4[0] << 8 | l4[1];
		t->dport = (__u16)l4[2] << 8 | l4[3];
		return 0;
	case VEIL_IPPROTO_ICMP:
	case VEIL_IPPROTO_ICMPV6: {
		__u8 req = t->proto == VEIL_IPPROTO_ICMP ? 8 : 128;
		__u8 rep = t->proto == VEIL_IPPROTO_ICMP ? 0 : 129;
		__u16 id;

		/* type, code, checksum, then (echo) id and sequence */
		if (veil_load(skb, off, l4, 8))
			return -VEIL_DROP_INVALID_PACKET;
		id = (__u16)l4[4] << 8 | l4[5];
		if (l4[0] == req) {
			t->sport = id;
		} else if (l4[0] == rep) {
			t->dport = id;
		}
		if (inner)
			return 0;
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		if (l4[0] == req || l4[0] == rep)
			p->echo_id = id;
		if (t->proto == VEIL_IPPROTO_ICMP ? veil_is_icmp4_error(l4[0]) :
						    veil_is_icmp6_error(l4[0]))
			p->flags |= VEIL_PKT_F_ICMP_ERROR;
		/* link control: NDP (133..137) with hop limit 255, which receivers require and a
		 * forwarded packet cannot have (RFC 4861), whatever the destination; MLD (130..132,
		 * 143) to a link-scope destination */
		if (t->proto == VEIL_IPPROTO_ICMPV6 &&
		    ((l4[0] >= 133 && l4[0] <= 137 && p->hop_limit == 255) ||
		     (((l4[0] >= 130 && l4[0] <= 132) || l4[0] == 143) &&
			      ((t->daddr[0] == 0xfe && (t->daddr[1] & 0xc0) == 0x80) ||
			       (t->daddr[0] == 0xff && (t->daddr[1] & 0x0f) == 0x02)))))
			p->flags |= VEIL_PKT_F_NDP;
		return 0;
	}
	default:
		return 0; /* no ports: the tuple is addresses and protocol */
	}
}

/*
 * The packet quoted by an ICMP(v6) error at `off` (IPv4/IPv6 header + at least 8 bytes of L4),
 * into p->inner. Its family must match the outer one. Returns 0 or -VEIL_DROP_INVALID_PACKET.
 */
static __always_inline int veil_parse_icmp_inner(struct __sk_buff *skb, __u32 off,
						 struct veil_pkt *p)
{
	struct veil_tuple *t = &p->inner;

	t->family = p->t.family;
	if (p->t.family == VEIL_AF_INET) {
		struct veil_ip4 ip;
		__u32 hlen;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
			return -VEIL_DROP_INVALID_PACKET;
		hlen = (ip.ver_ihl & 0x0f) * 4;
		if ((ip.ver_ihl >> 4) != 4 || hlen < sizeof(ip))
			return -VEIL_DROP_INVALID_PACKET;
		__builtin_memcpy(t->saddr, ip.saddr, 4);
		__builtin_memcpy(t->daddr, ip.daddr, 4);
		t->proto = ip.proto;
		if (bpf_ntohs(ip.frag_off) & 0x1fff)
			return 0; /* quoted a later fragment: no ports */
		return veil_parse_ports(skb, off + hlen, t, p, 1);
	} else {
		struct veil_ip6 ip;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
			return -VEIL_DROP_INVALID_PACKET;
		if ((bpf_ntohl(ip.ver_tc_flow) >> 28) != 6)
			return -VEIL_DROP_INVALID_PACKET;
		__builtin_memcpy(t->saddr, ip.saddr, 16);
		__builtin_memcpy(t->daddr, ip.daddr, 16);
		t->proto = ip.nexthdr; /* quoted extension headers: matched on addresses only */
		return veil_parse_ports(skb, off + sizeof(ip), t, p, 1);
	}
}

static __always_inline int veil_parse_l4(struct __sk_buff *skb, __u32 off, struct veil_pkt *p)
{
	int ret = veil_parse_ports(skb, off, &p->t, p, 0);

	if (ret < 0)
		return ret;
	if (p->flags & VEIL_PKT_F_ICMP_ERROR)
		return veil_parse_icmp_inner(skb, off + 8, p);
	return 0;
}

static __always_inline int veil_parse_ipv4(struct __sk_buff *skb, __u32 off, struct veil_pkt *p)
{
	struct veil_ip4 ip;
	__u32 hlen, tot;

	if (veil_load(skb, off, &ip, sizeof(ip)))
		return -VEIL_DROP_INVALID_PACKET;
	hlen = (ip.ver_ihl & 0x0f) * 4;
	tot = bpf_ntohs(ip.tot_len);
	if ((ip.ver_ihl >> 4) != 4 || hlen < sizeof(ip) || tot < hlen || off + tot > skb->len)
		return -VEIL_DROP_INVALID_PACKET;
	p->t.family = VEIL_AF_INET;
	p->hop_limit = ip.ttl;
	p->t.proto = ip.proto;
	__builtin_memcpy(p->t.saddr, ip.saddr, 4);
	__builtin_memcpy(p->t.daddr, ip.daddr, 4);
	p->frag_id = bpf_ntohs(ip.id);
	if (bpf_ntohs(ip.frag_off) & 0x1fff) {
		p->flags |= VEIL_PKT_F_LATER_FRAGMENT;
		return 0;
	}
	if (bpf_ntohs(ip.frag_off) & 0x2000) /* more fragments */
		p->flags |= VEIL_PKT_F_FIRST_FRAGMENT;
	return veil_parse_l4(skb, off + hlen, p);
}

static __always_inline int veil_parse_ipv6(struct __sk_buff *skb, __u32 off, struct veil_pkt *p)
{
	struct veil_ip6 ip;
	__u8 next;
	__u32 end;

	if (veil_load(skb, off, &ip, sizeof(ip)))
		return -VEIL_DROP_INVALID_PACKET;
	end = off + sizeof(ip) + bpf_ntohs(ip.payload_len);
	if ((bpf_ntohl(ip.ver_tc_flow) >> 28) != 6 || end > skb->len)
		return -VEIL_DROP_INVALID_PACKET;
	p->t.family = VEIL_AF_INET6;
	p->hop_limit = ip.hop_limit;
	__builtin_memcpy(p->t.saddr, ip.saddr, 16);
	__builtin_memcpy(p->t.daddr, ip.daddr, 16);
	next = ip.nexthdr;
	off += sizeof(ip);

#pragma unroll
	for (int i = 0; i < VEIL_IPV6_MAX_EXT_HEADERS; i++) {
		__u8 ext[8]; /* every extension header is at least 8 bytes */

		if (next != VEIL_IPPROTO_HOPOPTS && next != VEIL_IPPROTO_ROUTING &&
		    next != VEIL_IPPROTO_DSTOPTS && next != VEIL_IPPROTO_FRAGMENT &&
		    next != VEIL_IPPROTO_AH)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
			return -VEIL_DROP_INVALID_PACKET;
		if (next == VEIL_IPPROTO_FRAGMENT) {
			p->frag_id = (__u32)ext[4] << 24 | (__u32)ext[5] << 16 | (__u32)ext[6] << 8 | ext[7];
			if ((((__u16)ext[2] << 8 | ext[3]) & 0xfff8) != 0) {
				p->t.proto = ext[0];
				p->flags |= VEIL_PKT_F_LATER_FRAGMENT;
				return 0;
			}
			if (ext[3] & 1) /* more fragments */
				p->flags |= VEIL_PKT_F_FIRST_FRAGMENT;
			off += 8;
		} else if (next == VEIL_IPPROTO_AH) {
			off += ((__u32)ext[1] + 2) * 4;
		} else {
			off += ((__u32)ext[1] + 1) * 8;
		}
		next = ext[0];
	}
	if (next == VEIL_IPPROTO_HOPOPTS || next == VEIL_IPPROTO_ROUTING ||
	    next == VEIL_IPPROTO_DSTOPTS || next == VEIL_IPPROTO_FRAGMENT || next == VEIL_IPPROTO_AH)
		return -VEIL_DROP_INVALID_PACKET; /* more extension headers than we walk */
	if (off > end)
		return -VEIL_DROP_INVALID_PACKET;
	p->t.proto = next;
	return veil_parse_l4(skb, off, p);
}

/*
 * Parses the frame into `p`. Returns 0 for IPv4/IPv6 (p filled in), VEIL_FWD_NOT_IP for any
 * other EtherType (p->eth_proto tells which), or -VEIL_DROP_INVALID_PACKET.
 */
__attribute__((noinline)) int veil_parse(struct __sk_buff *skb, struct veil_pkt *p)
{
	if (!p)
		return -VEIL_DROP_INVALID_PACKET;
	__be16 proto;

	if (veil_load(skb, 12, &proto, sizeof(proto)))
		return -VEIL_DROP_INVALID_PACKET;
	p->eth_proto = bpf_ntohs(proto);
	if (p->eth_proto == ETH_P_IP)
		return veil_parse_ipv4(skb, ETH_HLEN, p);
	if (p->eth_proto == ETH_P_IPV6)
		return veil_parse_ipv6(skb, ETH_HLEN, p);
	return VEIL_FWD_NOT_IP;
}

#endif /* VEIL_LIB_PARSE_H */
