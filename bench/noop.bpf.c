// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* noop.bpf.c: the baseline of persona_bench, a cgroup_skb egress program that passes
 * every packet and touches nothing. Only ever run with bpf_prog_test_run, never attached. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("cgroup_skb/egress")
int pbpf_bench_noop(struct __sk_buff *skb)
{
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
