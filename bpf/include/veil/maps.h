/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Key and value layouts of the maps the agent and the eBPF programs share. The TypeScript
 * encoders in agent/datapath/ mirror these structs; a test compares their offsets and sizes with
 * the BTF that clang emits for the compiled object. Addresses are in network byte order; every
 * other integer in host byte order. Explicit padding everywhere: no implicit holes, so the bytes
 * the agent writes are exactly the bytes the program reads. Documented in docs/datapath.md.
 */
#ifndef VEIL_MAPS_H
#define VEIL_MAPS_H

#include <linux/types.h>

#define VEIL_AF_INET 4
#define VEIL_AF_INET6 6

/* ---- endpoints: host-side ifindex of a pod's veth -> the pod ---- */
#define VEIL_EP_F_HAS_IPV4 (1u << 0)
#define VEIL_EP_F_HAS_IPV6 (1u << 1)
#define VEIL_EP_F_ENFORCE_INGRESS (1u << 2) /* a policy selects this pod for ingress: default deny */
#define VEIL_EP_F_ENFORCE_EGRESS (1u << 3) /* a policy selects this pod for egress: default deny */

struct veil_endpoint_key {
	__u32 ifindex;
}; /* 4 bytes */

struct veil_endpoint {
	__u32 identity;
	__u32 flags; /* VEIL_EP_F_* */
	__u8 ipv4[4];
	__u8 ipv6[16];
	__u8 key_generation; /* IPsec: the sending generation of the pod identity's key (mod 4 is used) */
	__u8 pad[3]; /* zero; keeps the value a multiple of 8 bytes */
}; /* 32 bytes */

/* ---- ipcache: address or prefix -> who lives there ----
 * Two tiers per family: exact host addresses (/32, /128) in a hash map, the common case and the
 * fast one; other prefixes (pod CIDRs of nodes, external CIDRs) in an LPM trie, consulted only
 * when the hash misses. The agent's API takes prefixes and chooses the tier. */
#define VEIL_IPC_F_LOCAL (1u << 0) /* on this node (a local pod or this node's own address) */
#define VEIL_IPC_F_POD (1u << 1) /* a pod address or pod CIDR */
#define VEIL_IPC_F_NODE (1u << 2) /* a node's own (underlay) address */
#define VEIL_IPC_F_TUNNEL_V6 (1u << 3) /* tunnel_endpoint is IPv6 (else IPv4 in its first 4 bytes) */

struct veil_ipcache_entry {
	__u32 identity;
	__u16 node_index; /* 0 = this node / not a node */
	__u8 key_slot; /* WireGuard: the steering channel (bit 0); IPsec: the destination node's
			* node key generation its SAs use (mod 4), the low half of the SA's key slot */
	__u8 flags; /* VEIL_IPC_F_* */
	__u8 tunnel_endpoint[16]; /* underlay address of the node hosting it */
}; /* 24 bytes */

struct veil_ipcache4_host_key {
	__u8 addr[4];
}; /* 4 bytes */
struct veil_ipcache6_host_key {
	__u8 addr[16];
}; /* 16 bytes */
/* LPM keys follow struct bpf_lpm_trie_key exactly (no padding allowed: the trie compares the
 * bytes after prefixlen), hence the sizes that are not multiples of 8. */
struct veil_ipcache4_lpm_key {
	__u32 prefixlen; /* bpf_lpm_trie_key layout */
	__u8 addr[4];
}; /* 8 bytes */
struct veil_ipcache6_lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
}; /* 20 bytes */

/* ---- policy: (subject identity, peer identity, port, protocol, direction) -> verdict ----
 * Lookup order, most specific first, first hit wins:
 *   (peer, proto, port) (peer, proto, 0) (peer, 0, 0) (0, proto, port) (0, proto, 0) (0, 0, 0)
 * "Deny wins" is the compiler's job (agent/datapath/policy-compile.ts): every entry already carries
 * the deny of any entry that covers it, and the intersection of an allow and a deny that overlap
 * without covering each other is inserted as a deny. So the program can stop at the first hit. */
#define VEIL_DIR_INGRESS 0
#define VEIL_DIR_EGRESS 1

#define VEIL_VERDICT_ALLOW 1
#define VEIL_VERDICT_DENY 2

#define VEIL_POL_F_REQUIRE_ENCRYPTION (1u << 0) /* allow only if the packet is/was encrypted */
#define VEIL_POL_F_REQUIRE_AUTH_IDENTITY (1u << 1) /* allow only with a kernel-authenticated identity */

struct veil_policy_key {
	__u32 subject; /* identity of the pod the policy protects */
	__u32 peer; /* identity of the other side; 0 = any */
	__u16 dport; /* destination port (host order); 0 = any */
	__u8 proto; /* IPPROTO_*; 0 = any (then dport is 0) */
	__u8 direction; /* VEIL_DIR_* */
}; /* 12 bytes (a hash key: 4-byte aligned, no holes) */

struct veil_policy_value {
	__u8 verdict; /* VEIL_VERDICT_* */
	__u8 flags; /* VEIL_POL_F_* */
	__u16 pad;
}; /* 4 bytes */

/* ---- runtime configuration: one entry, index 0 ---- */
#define VEIL_CFG_F_STRICT (1u << 0) /* strict mode: uplink programs drop plaintext pod traffic */
#define VEIL_CFG_F_MODE_WIREGUARD (1u << 1)
#define VEIL_CFG_F_MODE_IPSEC (1u << 2)

/* WireGuard runs two channels (devices) per node for make-before-break static key rotation
 * (docs/wireguard-rotation.md): from-pod redirects remote-pod traffic into
 * wireguard_ifindex[key_slot & 1], key_slot taken from the destination's ipcache entry. Channel 0
 * listens on wireguard_port, channel 1 on wireguard_port + 1 (the uplink programs recognise both). */
#define VEIL_WG_CHANNELS 2

struct veil_config {
	__u32 flags; /* VEIL_CFG_F_* */
	__u32 wireguard_ifindex[VEIL_WG_CHANNELS]; /* per channel; 0 = channel not up */
	__u32 node_identity; /* this node's own identity (reserved "host") */
	__u16 wireguard_port; /* channel 0's UDP listen port; channel 1 uses wireguard_port + 1 */
	__u16 node_index; /* this node's index */
	__u32 pad; /* zero; keeps the value a multiple of 8 bytes */
}; /* 24 bytes */

/* ---- counters: per-CPU array, index hook * VEIL_REASON_MAX + reason ---- */
struct veil_counter {
	__u64 packets;
	__u64 bytes;
}; /* 16 bytes */

/* ---- events: ring buffer records ---- */
#define VEIL_EVENT_DROP 1
#define VEIL_EVENT_FLOW_NEW 2 /* a new connection was allowed and entered conntrack */

struct veil_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns() */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 ifindex;
	__u8 type; /* VEIL_EVENT_* */
	__u8 reason; /* VEIL_FWD_* / VEIL_DROP_* */
	__u8 hook; /* VEIL_HOOK_* */
	__u8 family; /* VEIL_AF_*; 0 when not IP */
	__u8 proto;
	__u8 pad[3];
	__u16 sport; /* host order; ICMP: echo id */
	__u16 dport; /* host order; ICMP: type << 8 | code */
	__u8 saddr[16];
	__u8 daddr[16];
}; /* 64 bytes */

#endif /* VEIL_MAPS_H */
