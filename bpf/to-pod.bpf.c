/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* to-pod: entry point; the logic and its conditions are in lib/to-pod.h. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "lib/to-pod.h"

SEC("tc")
int veil_to_pod_prog(struct __sk_buff *skb)
{
	struct veil_pkt p = {};
	__u32 src_id = 0, dst_id = 0;
	int ret = veil_to_pod(skb, &p, &src_id, &dst_id);

	if (ret < 0) {
		veil_account_drop(skb, VEIL_HOOK_TO_POD, -ret, src_id, dst_id, &p);
		return TC_ACT_SHOT;
	}
	veil_account_pass(skb, VEIL_HOOK_TO_POD, ret);
	return veil_tc_pass(ret);
}

char LICENSE[] SEC("license") = "GPL";
