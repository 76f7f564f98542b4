/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Who lives at an address: the exact-address hash of the family first (one fixed-length hash,
 * the common case for pods), then the family's LPM trie (node pod CIDRs, external prefixes).
 */
#ifndef VEIL_LIB_IPCACHE_H
#define VEIL_LIB_IPCACHE_H

#include "maps.h"

/* Reserved identities (agent/identity/reserved.ts). */
#define VEIL_IDENTITY_HOST 1
#define VEIL_IDENTITY_WORLD 2

/* The ipcache entry for `addr` of `family`, or NULL when no entry covers it. */
static __always_inline struct veil_ipcache_entry *veil_ipcache_lookup(__u8 family, const __u8 *addr)
{
	struct veil_ipcache_entry *e;

	if (family == VEIL_AF_INET) {
		struct veil_ipcache4_lpm_key lk = { .prefixlen = 32 };

		e = bpf_map_lookup_elem(&veil_ipc4_host, addr);
		if (e)
			return e;
		__builtin_memcpy(lk.addr, addr, 4);
		return bpf_map_lookup_elem(&veil_ipc4_lpm, &lk);
	} else {
		struct veil_ipcache6_lpm_key lk = { .prefixlen = 128 };

		e = bpf_map_lookup_elem(&veil_ipc6_host, addr);
		if (e)
			return e;
		__builtin_memcpy(lk.addr, addr, 16);
		return bpf_map_lookup_elem(&veil_ipc6_lpm, &lk);
	}
}

/* The identity of an ipcache entry; addresses the ipcache does not know are "world". */
static __always_inline __u32 veil_ipcache_identity(const struct veil_ipcache_entry *e)
{
	return e ? e->identity : VEIL_IDENTITY_WORLD;
}

#endif /* VEIL_LIB_IPCACHE_H */
