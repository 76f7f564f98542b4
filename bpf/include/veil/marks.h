/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The skb->mark layout Veil uses. Mirrored by agent/datapath/marks.ts; a unit test compares the
 * two. Documented in docs/datapath.md §Marks.
 *
 *   31            16 15    12 11     8 7      4 3      0
 *  +----------------+--------+--------+--------+--------+
 *  |    identity    | (free) | purpose|key slot| (free) |
 *  +----------------+--------+--------+--------+--------+
 *
 * - purpose (bits 8-11): what the mark means; zero means "not Veil's".
 * - identity (bits 16-31): the numeric security identity (1..65535) the mark speaks for.
 * - key slot (bits 4-7): which key generation (mod 16) an IPsec SA belongs to, so old and new SAs
 *   coexist during rotation and XFRM policies select the right one.
 * - bits 12-15 and 0-3 are never set nor matched by Veil: kube-proxy uses 0x4000 and 0x8000, and
 *   others use the low bits. Every Veil mask excludes them (VEIL_MARK_MATCH_MASK).
 */
#ifndef VEIL_MARKS_H
#define VEIL_MARKS_H

#define VEIL_MARK_PURPOSE_MASK 0x00000F00u
#define VEIL_MARK_PURPOSE_SHIFT 8
#define VEIL_MARK_IDENTITY_MASK 0xFFFF0000u
#define VEIL_MARK_IDENTITY_SHIFT 16
#define VEIL_MARK_KEY_SLOT_MASK 0x000000F0u
#define VEIL_MARK_KEY_SLOT_SHIFT 4
/* The bits Veil owns; XFRM policies and states match marks with this mask. */
#define VEIL_MARK_MATCH_MASK 0xFFFF0FF0u

/* Purposes (already shifted into bits 8-11). */
/* Set by from-pod on a pod packet that XFRM must encrypt: identity = the sending pod's identity
 * (or 0 for per-node-pair SAs), key slot = the destination node's current slot. */
#define VEIL_MARK_ENCRYPT 0x00000E00u
/* Set by an inbound SA (XFRMA_SET_MARK) on the packet it decrypted: identity = the identity the
 * SA belongs to, authenticated by the key; key slot = the SA's slot. */
#define VEIL_MARK_DECRYPTED 0x00000D00u
/* The WireGuard device's fwmark for its own (outer, encrypted) UDP packets, so policy routing
 * never sends them back into the tunnel. */
#define VEIL_MARK_WIREGUARD 0x00000A00u

#endif /* VEIL_MARKS_H */
