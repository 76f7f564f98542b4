/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The maps every Veil program shares. Each entry object (*.bpf.c) includes this header; the
 * loader (native/src/bpf.cc) gives all objects one instance of each map: maps with
 * LIBBPF_PIN_BY_NAME are pinned under the agent's pin directory and re-used by a restarted agent
 * (state that must survive it: endpoints, ipcache, policy, conntrack, config, counters); the
 * event ring buffer is not pinned and is shared within one load. max_entries here are defaults;
 * the agent sets them before load (DatapathOptions.maxEntries). Layouts: include/veil/maps.h.
 */
#ifndef VEIL_LIB_MAPS_H
#define VEIL_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "../include/veil/maps.h"
#include "../include/veil/reasons.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct veil_endpoint_key);
	__type(value, struct veil_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct veil_ipcache4_host_key);
	__type(value, struct veil_ipcache_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_ipc4_host SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct veil_ipcache6_host_key);
	__type(value, struct veil_ipcache_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_ipc6_host SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct veil_ipcache4_lpm_key);
	__type(value, struct veil_ipcache_entry);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_ipc4_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct veil_ipcache6_lpm_key);
	__type(value, struct veil_ipcache_entry);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_ipc6_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct veil_policy_key);
	__type(value, struct veil_policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct veil_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VEIL_HOOK_MAX * VEIL_REASON_MAX);
	__type(key, __u32);
	__type(value, struct veil_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veil_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} veil_events SEC(".maps");

/* The connection-tracking table (veil_ct) is defined with its layout in lib/conntrack.h. */

#endif /* VEIL_LIB_MAPS_H */
