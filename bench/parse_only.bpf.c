// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* parse_only.bpf.c: the "parse only" baseline of persona_bench. A cgroup_skb egress
 * program that reads the same headers, with the same helper calls, as parse() of
 * bpf/persona.bpf.c (IPv4 header, IPv6 fixed header and extension-header walk, the first
 * bytes of TCP/UDP/ICMP) and passes the packet: no map lookup, no counter, no conntrack.
 * The parser is persona.bpf.c's own (bpf/parse.h). A malformed
 * packet is dropped so that the parse result is used. Only ever run with
 * bpf_prog_test_run, never attached. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps/abi/types.h"
#include "maps/abi/policy.h"

#include "bpf/parse.h"

SEC("cgroup_skb/egress")
int pbpf_bench_parse_only(struct __sk_buff *skb)
{
	struct pkt p;

	__builtin_memset(&p, 0, sizeof(p));
	return parse(skb, 0, &p) == PARSE_MALFORMED ? 0 : 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
