// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* persona.bpf.c: cgroup_skb ingress/egress enforcement of personas. Per packet: cgroup ->
 * persona (nearest bound ancestor, cached) -> policy trie -> ADDR then PORT lookup ->
 * verdict, counters. Contract: docs/architecture.md; layouts: maps/abi/. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps/abi/types.h"
#include "maps/abi/limits.h"
#include "maps/abi/policy.h"
#include "maps/abi/binding.h"
#include "maps/abi/counters.h"
#include "maps/abi/settings.h"
#include "maps/abi/forward.h"

/* vmlinux.h carries types, not the uapi macros. */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_DSTOPTS_ 60

/* Extension headers walked before giving up (and failing closed). Real traffic carries
 * one or two; the bound keeps the verifier's work small. */
#define PBPF_MAX_IPV6_EXT_HEADERS 6

/* cgroup_skb return codes. */
#define PBPF_DROP 0
#define PBPF_PASS 1

/* Inner map template: every trie the agent writes into pbpf_policies must match it
 * (type, key/value size, flags, max_entries); maps/policy_trie.cpp creates them so. */
struct pbpf_policy_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PBPF_MAX_POLICY_ENTRIES);
	__type(key, struct pbpf_policy_key);
	__type(value, struct pbpf_policy_value);
};

/* clang emits the trie's key and value types only as forward declarations (they are
 * reached through the template's pointers), and libbpf then cannot size the inner map.
 * A read-only variable holding both makes their full definitions part of the BTF. It is
 * static so that the generated skeleton does not expose it (its users would otherwise
 * need the ABI headers before persona.skel.h). */
static const volatile struct {
	struct pbpf_policy_key key;
	struct pbpf_policy_value value;
} pbpf_btf_anchor_policy __attribute__((used));

/* No program reads a persona's settings slot or forward map yet; anchoring their structs
 * here keeps them in the BTF, so tests/bpf/abi_layout_test checks their layout too. */
static const volatile struct {
	struct pbpf_persona_settings settings;
	struct pbpf_forward_key forward_key;
	struct pbpf_forward_value forward_value;
} pbpf_btf_anchor_settings __attribute__((used));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PBPF_MAX_PERSONAS);
	__type(key, __u32);
	__array(values, struct pbpf_policy_trie);
} pbpf_policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBPF_MAX_BINDINGS);
	__type(key, __u64);
	__type(value, struct pbpf_binding);
} pbpf_bindings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PBPF_RESOLVE_CACHE_ENTRIES);
	__type(key, __u64);
	__type(value, struct pbpf_resolved);
} pbpf_resolve_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pbpf_globals);
} pbpf_globals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PBPF_MAX_PERSONAS);
	__type(key, __u32);
	__type(value, struct pbpf_counters);
} pbpf_counters SEC(".maps");

enum count_kind {
	COUNT_ALLOWED,
	COUNT_DENIED,
	COUNT_AUDITED,
};

/* Per-CPU slot, so plain increments are exact (no atomics needed). */
static __always_inline void count(__u32 persona_id, int dir, enum count_kind kind, __u64 bytes)
{
	struct pbpf_counters *c = bpf_map_lookup_elem(&pbpf_counters, &persona_id);
	struct pbpf_dir_counters *d;

	if (!c)
		return;
	d = &c->dir[dir & 1];
	switch (kind) {
	case COUNT_ALLOWED:
		d->allowed_packets++;
		d->allowed_bytes += bytes;
		break;
	case COUNT_DENIED:
		d->denied_packets++;
		d->denied_bytes += bytes;
		break;
	case COUNT_AUDITED:
		d->audited_packets++;
		d->audited_bytes += bytes;
		break;
	}
}

/* Nearest bound ancestor of the packet's cgroup (the cgroup itself included), 0 if none.
 * Inherited results are cached per cgroup, tagged with the binding epoch read before the
 * walk: a binding change racing with the walk bumps the epoch after writing, so a result
 * computed from stale bindings is never reused. */
static __always_inline __u32 resolve_persona(struct __sk_buff *skb)
{
	__u64 cgid = bpf_skb_cgroup_id(skb);
	struct pbpf_binding *b;
	struct pbpf_resolved *cached;
	struct pbpf_resolved fresh;
	struct pbpf_globals *g;
	__u32 zero = 0;
	__u64 epoch = 0;
	int depth = -1;
	__u32 persona = 0;
	int i;

	b = bpf_map_lookup_elem(&pbpf_bindings, &cgid);
	if (b)
		return b->persona_id;

	g = bpf_map_lookup_elem(&pbpf_globals, &zero);
	if (g)
		epoch = g->binding_epoch;

	cached = bpf_map_lookup_elem(&pbpf_resolve_cache, &cgid);
	if (cached && cached->epoch == epoch)
		return cached->persona_id;

	/* The helper takes a level from the root (0) down; the skb's own cgroup is the level
	 * whose ancestor id equals its id. A cgroup deeper than the bound inherits from the
	 * nearest bound ancestor among the top PBPF_MAX_CGROUP_DEPTH levels. */
	for (i = 0; i < PBPF_MAX_CGROUP_DEPTH; i++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, i);

		if (id == 0)
			break;
		if (id == cgid) {
			depth = i;
			break;
		}
	}
	if (i == PBPF_MAX_CGROUP_DEPTH)
		depth = PBPF_MAX_CGROUP_DEPTH;

	/* Deepest first, the cgroup itself excluded (its binding missed above). */
	for (i = 0; i < PBPF_MAX_CGROUP_DEPTH; i++) {
		int level = depth - 1 - i;
		__u64 id;

		if (level < 0)
			break;
		id = bpf_skb_ancestor_cgroup_id(skb, level);
		b = bpf_map_lookup_elem(&pbpf_bindings, &id);
		if (b) {
			persona = b->persona_id;
			break;
		}
	}

	__builtin_memset(&fresh, 0, sizeof(fresh));
	fresh.persona_id = persona;
	fresh.epoch = epoch;
	bpf_map_update_elem(&pbpf_resolve_cache, &cgid, &fresh, BPF_ANY);
	return persona;
}

enum parse_result {
	PARSE_OK,
	PARSE_NOT_IP,    /* neither IPv4 nor IPv6: not a persona matter */
	PARSE_MALFORMED, /* truncated or inconsistent headers */
};

struct l4_info {
	__u8 proto;  /* enum pbpf_proto bucket */
	__u16 port;  /* destination port, host order; 0 without ports */
};

/* Bucket of an IP protocol number. ICMP belongs to IPv4 and ICMPv6 to IPv6 only: the
 * lowering writes port entries for exactly those, so the other pairing is "other". */
static __always_inline __u8 proto_bucket(__u8 family, __u8 ipproto)
{
	switch (ipproto) {
	case IPPROTO_TCP_:
		return PBPF_PROTO_TCP;
	case IPPROTO_UDP_:
		return PBPF_PROTO_UDP;
	case IPPROTO_ICMP_:
		return family == PBPF_FAMILY_IPV4 ? PBPF_PROTO_ICMP : PBPF_PROTO_OTHER;
	case IPPROTO_ICMPV6_:
		return family == PBPF_FAMILY_IPV6 ? PBPF_PROTO_ICMPV6 : PBPF_PROTO_OTHER;
	default:
		return PBPF_PROTO_OTHER;
	}
}

/* Reads the destination port of a TCP/UDP header at l4_off. A fragment that is not the
 * first has no L4 header: it keeps its protocol bucket with port 0. Such fragments do not
 * reach cgroup_skb in practice (egress runs before IP fragmentation, ingress after
 * reassembly); only a raw socket building its own fragments produces them. */
static __always_inline int read_l4(struct __sk_buff *skb, __u32 l4_off, __u8 family,
				   __u8 ipproto, int later_fragment, struct l4_info *l4)
{
	__be16 ports[2];

	l4->proto = proto_bucket(family, ipproto);
	l4->port = 0;
	if (later_fragment)
		return PARSE_OK;
	if (ipproto != IPPROTO_TCP_ && ipproto != IPPROTO_UDP_)
		return PARSE_OK;
	if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)))
		return PARSE_MALFORMED;
	l4->port = bpf_ntohs(ports[1]);
	return PARSE_OK;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, int dir, struct pbpf_policy_key *akey,
				      struct l4_info *l4)
{
	struct iphdr ip;
	__u32 hlen;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
		return PARSE_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return PARSE_MALFORMED;
	hlen = ip.ihl * 4;
	akey->family_or_proto = PBPF_FAMILY_IPV4;
	__builtin_memcpy(akey->data, dir == PBPF_DIR_EGRESS ? &ip.daddr : &ip.saddr, 4);
	return read_l4(skb, hlen, PBPF_FAMILY_IPV4, ip.protocol,
		       (ip.frag_off & bpf_htons(0x1fff)) != 0, l4);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, int dir, struct pbpf_policy_key *akey,
				      struct l4_info *l4)
{
	/* First 8 bytes of the fixed header: version, payload length, next header. */
	__u8 fixed[8];
	/* Generic extension header start: next header, length; for a fragment header
	 * also the offset field (bytes 2..3). */
	__u8 ext[4];
	__u32 off = 40;
	__u8 nexthdr;
	int later_fragment = 0;
	int i;

	if (bpf_skb_load_bytes(skb, 0, fixed, sizeof(fixed)))
		return PARSE_MALFORMED;
	if ((fixed[0] >> 4) != 6)
		return PARSE_MALFORMED;
	/* Peer: source at 8, destination at 24; also proves the fixed header is whole. */
	if (bpf_skb_load_bytes(skb, dir == PBPF_DIR_EGRESS ? 24 : 8, akey->data, 16))
		return PARSE_MALFORMED;
	akey->family_or_proto = PBPF_FAMILY_IPV6;
	nexthdr = fixed[6];

	for (i = 0; i < PBPF_MAX_IPV6_EXT_HEADERS; i++) {
		switch (nexthdr) {
		case IPPROTO_HOPOPTS_:
		case IPPROTO_ROUTING_:
		case IPPROTO_DSTOPTS_:
			if (bpf_skb_load_bytes(skb, off, ext, 2))
				return PARSE_MALFORMED;
			nexthdr = ext[0];
			off += ((__u32)ext[1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT_:
			if (bpf_skb_load_bytes(skb, off, ext, 4))
				return PARSE_MALFORMED;
			nexthdr = ext[0];
			/* Offset in the top 13 bits of bytes 2..3. */
			if ((((__u16)ext[2] << 8 | ext[3]) & 0xfff8) != 0)
				later_fragment = 1;
			off += 8;
			break;
		case IPPROTO_AH_:
			if (bpf_skb_load_bytes(skb, off, ext, 2))
				return PARSE_MALFORMED;
			nexthdr = ext[0];
			off += ((__u32)ext[1] + 2) * 4;
			break;
		default:
			return read_l4(skb, off, PBPF_FAMILY_IPV6, nexthdr, later_fragment, l4);
		}
		/* Keeps the offset provably bounded for the verifier and rejects nonsense. */
		if (off > 0xffff)
			return PARSE_MALFORMED;
	}
	/* Still inside extension headers after the bound: cannot classify, fail closed. */
	switch (nexthdr) {
	case IPPROTO_HOPOPTS_:
	case IPPROTO_ROUTING_:
	case IPPROTO_DSTOPTS_:
	case IPPROTO_FRAGMENT_:
	case IPPROTO_AH_:
		return PARSE_MALFORMED;
	}
	return read_l4(skb, off, PBPF_FAMILY_IPV6, nexthdr, later_fragment, l4);
}

/* cgroup_skb data starts at the network header; the family comes from skb->protocol
 * (and must agree with the version nibble, else the packet is malformed). */
static __always_inline int parse(struct __sk_buff *skb, int dir, struct pbpf_policy_key *akey,
				 struct l4_info *l4)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, dir, akey, l4);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, dir, akey, l4);
	return PARSE_NOT_IP;
}

/* Decisions beyond the contract (docs/architecture.md):
 *  - no persona: counted as allowed under index 0, passed, not parsed;
 *  - not IPv4/IPv6 (cannot reach cgroup_skb of inet sockets): passed, not counted;
 *  - bound persona and a truncated/malformed packet, a missing policy trie, or a trie
 *    lookup miss (an incomplete image): fail closed, dropped and counted as denied. */
static __always_inline int evaluate(struct __sk_buff *skb, int dir)
{
	struct pbpf_policy_key key;
	struct pbpf_policy_value *addr_val, *port_val;
	struct l4_info l4;
	__u64 bytes = skb->len;
	__u32 persona;
	__u32 class_id;
	void *trie;
	int rc;

	persona = resolve_persona(skb);
	if (persona == 0) {
		count(0, dir, COUNT_ALLOWED, bytes);
		return PBPF_PASS;
	}

	__builtin_memset(&key, 0, sizeof(key));
	__builtin_memset(&l4, 0, sizeof(l4));
	rc = parse(skb, dir, &key, &l4);
	if (rc == PARSE_NOT_IP)
		return PBPF_PASS;
	if (rc != PARSE_OK)
		goto deny;

	trie = bpf_map_lookup_elem(&pbpf_policies, &persona);
	if (!trie)
		goto deny;

	/* ADDR: family and peer address were filled by parse. */
	key.prefixlen = PBPF_POLICY_HEADER_BITS +
			(key.family_or_proto == PBPF_FAMILY_IPV4 ? 32 : 128);
	key.kind = PBPF_ENTRY_ADDR;
	key.dir = dir;
	addr_val = bpf_map_lookup_elem(trie, &key);
	if (!addr_val)
		goto deny;
	class_id = addr_val->class_id;

	/* PORT: same key buffer, rezeroed so no address byte leaks into it. */
	__builtin_memset(&key, 0, sizeof(key));
	key.prefixlen = PBPF_POLICY_HEADER_BITS + PBPF_POLICY_CLASS_BITS + 16;
	key.kind = PBPF_ENTRY_PORT;
	key.family_or_proto = l4.proto;
	key.data[0] = class_id >> 24;
	key.data[1] = class_id >> 16;
	key.data[2] = class_id >> 8;
	key.data[3] = class_id;
	key.data[4] = l4.port >> 8;
	key.data[5] = l4.port;
	port_val = bpf_map_lookup_elem(trie, &key);
	if (!port_val)
		goto deny;

	if (port_val->verdict == PBPF_VERDICT_ALLOW) {
		count(persona, dir, COUNT_ALLOWED, bytes);
		return PBPF_PASS;
	}
	if (port_val->verdict == PBPF_VERDICT_DENY && (port_val->flags & PBPF_POLICY_F_AUDIT)) {
		count(persona, dir, COUNT_AUDITED, bytes);
		return PBPF_PASS;
	}
deny:
	count(persona, dir, COUNT_DENIED, bytes);
	return PBPF_DROP;
}

SEC("cgroup_skb/ingress")
int pbpf_cgroup_ingress(struct __sk_buff *skb)
{
	return evaluate(skb, PBPF_DIR_INGRESS);
}

SEC("cgroup_skb/egress")
int pbpf_cgroup_egress(struct __sk_buff *skb)
{
	return evaluate(skb, PBPF_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
