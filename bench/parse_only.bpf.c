// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* parse_only.bpf.c: the "parse only" baseline of persona_bench. A cgroup_skb egress
 * program that reads the same headers, with the same helper calls, as parse() of
 * bpf/persona.bpf.c (IPv4 header, IPv6 fixed header and extension-header walk, the first
 * bytes of TCP/UDP/ICMP) and passes the packet: no map lookup, no counter, no conntrack.
 * The parser is persona.bpf.c's own (bpf/parse.h). A malformed
 * packet is dropped so that the parse result is used. Only ever run with
 * bpf_prog_test_run, never attached.
 *
 * A second program, the floor of any flow-table design: the same parse, then one lookup
 * of the packet's flow (persona.bpf.c's 56-byte key, the socket's cgroup id as workload)
 * in an LRU hash of the same type as pbpf_conntrack; the first run inserts the flow, every
 * later one finds it. Nothing else: no binding, no policy epoch, no counter. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps/abi/types.h"
#include "maps/abi/policy.h"
#include "maps/abi/conntrack.h"

#include "bpf/parse.h"

SEC("cgroup_skb/egress")
int pbpf_bench_parse_only(struct __sk_buff *skb)
{
	struct pkt p;

	__builtin_memset(&p, 0, sizeof(p));
	return parse(skb, 0, &p) == PARSE_MALFORMED ? 0 : 1;
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct pbpf_ct_key);
	__type(value, struct pbpf_ct_value);
} bench_flows SEC(".maps");

SEC("cgroup_skb/egress")
int pbpf_bench_parse_flow_lookup(struct __sk_buff *skb)
{
	struct pbpf_ct_value fresh, *v;
	struct pbpf_ct_key k;
	struct pkt p;

	__builtin_memset(&p, 0, sizeof(p));
	if (parse(skb, 0, &p) == PARSE_MALFORMED)
		return 0;
	__builtin_memset(&k, 0, sizeof(k));
	k.workload = bpf_skb_cgroup_id(skb);
	k.family = p.family;
	k.proto = p.ipproto;
	__builtin_memcpy(k.local, p.saddr, 16);
	__builtin_memcpy(k.remote, p.daddr, 16);
	k.local_port = p.sport;
	k.remote_port = p.dport;
	v = bpf_map_lookup_elem(&bench_flows, &k);
	if (v)
		return 1;
	__builtin_memset(&fresh, 0, sizeof(fresh));
	bpf_map_update_elem(&bench_flows, &k, &fresh, BPF_ANY);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
