// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xdp_prefilter.bpf.c: host-wide early drop on uplinks. Per packet: Ethernet (and one
 * VLAN tag) -> IPv4/IPv6 source address -> deny trie -> XDP_DROP or XDP_PASS, per-CPU
 * counters per interface. Everything it cannot parse passes: this is a prefilter, the
 * per-workload programs behind it fail closed. Layouts: maps/abi/xdp.h. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps/abi/types.h"
#include "maps/abi/xdp.h"

/* vmlinux.h carries types, not the uapi macros. */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

/* The agent sizes the trie from [xdp] max_entries before load. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct pbpf_xdp_key);
	__type(value, struct pbpf_xdp_deny_value);
} pbpf_xdp_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBPF_XDP_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct pbpf_xdp_iface);
} pbpf_xdp_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PBPF_XDP_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct pbpf_xdp_counters);
} pbpf_xdp_counters SEC(".maps");

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

/* Fills key with the packet's source address; 0 when it is not IP or too short. */
static __always_inline int source_key(void *data, void *data_end, struct pbpf_xdp_key *key)
{
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = bpf_ntohs(eth->h_proto);
	l3 = eth + 1;
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		struct vlan_hdr_ *vlan = l3;

		if ((void *)(vlan + 1) > data_end)
			return 0;
		proto = bpf_ntohs(vlan->proto);
		l3 = vlan + 1;
	}
	if (proto == ETH_P_IP) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return 0;
		key->prefixlen = PBPF_XDP_KEY_HEAD_BITS + 32;
		key->family = PBPF_XDP_FAMILY_IPV4;
		__builtin_memcpy(key->addr, &ip->saddr, 4);
		return 1;
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		key->prefixlen = PBPF_XDP_KEY_HEAD_BITS + 128;
		key->family = PBPF_XDP_FAMILY_IPV6;
		__builtin_memcpy(key->addr, &ip6->saddr, 16);
		return 1;
	}
	return 0;
}

SEC("xdp")
int pbpf_xdp_prefilter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct pbpf_xdp_key key = {};
	struct pbpf_xdp_iface *iface;
	struct pbpf_xdp_counters *c;
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 slot = 0;
	int drop = 0;

	if (source_key(data, data_end, &key))
		drop = bpf_map_lookup_elem(&pbpf_xdp_deny, &key) != NULL;

	iface = bpf_map_lookup_elem(&pbpf_xdp_ifaces, &ifindex);
	if (iface)
		slot = iface->slot;
	c = bpf_map_lookup_elem(&pbpf_xdp_counters, &slot);
	if (c) {
		/* Per-CPU slot: plain increments are exact. */
		if (drop) {
			c->dropped_packets++;
			c->dropped_bytes += bytes;
		} else {
			c->passed_packets++;
			c->passed_bytes += bytes;
		}
	}
	return drop ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
