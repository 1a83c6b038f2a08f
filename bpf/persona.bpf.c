// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* persona.bpf.c: enforcement of personas, per cgroup (cgroup_skb ingress/egress) and per
 * interface (tc ingress/egress). Per packet: workload -> persona (cgroup: nearest bound
 * ancestor, cached; interface: (netns, ifindex)) -> conntrack; a tracked flow costs that
 * one lookup; a new flow: policy map, ADDR then PORT lookup -> verdict, a conntrack
 * entry when it passes, a flow event. Contract: docs/architecture.md; layouts: maps/abi/. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "maps/abi/types.h"
#include "maps/abi/limits.h"
#include "maps/abi/policy.h"
#include "maps/abi/binding.h"
#include "maps/abi/counters.h"
#include "maps/abi/settings.h"
#include "maps/abi/forward.h"
#include "maps/abi/geo.h"
#include "maps/abi/conntrack.h"
#include "maps/abi/events.h"
#include "maps/abi/qos.h"

#include "bpf/parse.h"

/* Open-coded numeric iterator (kernel 6.4+; libbpf 1.1's headers predate bpf_for). */
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

#define ETH_P_ARP 0x0806

#define ETH_HLEN_ 14

#define TCP_FIN_ 0x01
#define TCP_SYN_ 0x02
#define TCP_RST_ 0x04
#define TCP_ACK_ 0x10

/* tc return codes. */
#define TC_ACT_OK_ 0
#define TC_ACT_SHOT_ 2

#define NSEC_PER_SEC 1000000000ULL

/* Verdicts of evaluate(); also the cgroup_skb return codes. */
#define PBPF_DROP 0
#define PBPF_PASS 1

/* Inner map template: every policy map the agent writes into pbpf_policies must match
 * its type, key/value size and flags (not max_entries: maps/policy_map.cpp sizes each to
 * its persona). */
struct pbpf_policy_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, struct pbpf_policy_key);
	__type(value, struct pbpf_policy_value);
};

/* clang emits the map's key and value types only as forward declarations (they are
 * reached through the template's pointers), and libbpf then cannot size the inner map.
 * A read-only variable holding both makes their full definitions part of the BTF. It is
 * static so that the generated skeleton does not expose it (its users would otherwise
 * need the ABI headers before persona.skel.h). */
static const volatile struct {
	struct pbpf_policy_key key;
	struct pbpf_policy_value value;
	struct pbpf_policy_lengths lengths;
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
	__array(values, struct pbpf_policy_map);
} pbpf_policies SEC(".maps");

/* Inner map template of pbpf_geo: the agent sizes each trie to its dataset. */
struct pbpf_geo_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, struct pbpf_geo_key);
	__type(value, struct pbpf_geo_value);
};

/* Slot 0: the geo dataset in force (maps/abi/geo.h); empty: no dataset. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct pbpf_geo_trie);
} pbpf_geo SEC(".maps");

/* Inner map template of pbpf_geo4: the IPv4 table; BPF_F_INNER_MAP lets each table have
 * the size of its dataset (65,536 blocks plus one per split /24). */
struct pbpf_geo4_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pbpf_geo4_block);
};

/* Slot 0: the IPv4 table in force (maps/abi/geo.h); empty: IPv4 is looked up in the trie
 * (which an older agent filled with both families), if any. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct pbpf_geo4_table);
} pbpf_geo4 SEC(".maps");

/* As for the policy template: the geo structs in full in the BTF. */
static const volatile struct {
	struct pbpf_geo_key key;
	struct pbpf_geo_value value;
	struct pbpf_geo4_block block;
} pbpf_btf_anchor_geo __attribute__((used));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBPF_MAX_BINDINGS);
	__type(key, __u64);
	__type(value, struct pbpf_binding);
} pbpf_bindings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBPF_MAX_IF_BINDINGS);
	__type(key, struct pbpf_if_key);
	__type(value, struct pbpf_binding);
} pbpf_if_bindings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PBPF_CT_ENTRIES);
	__type(key, struct pbpf_ct_key);
	__type(value, struct pbpf_ct_value);
} pbpf_conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PBPF_FRAG_ENTRIES);
	__type(key, struct pbpf_frag_key);
	__type(value, struct pbpf_frag_value);
} pbpf_fragments SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PBPF_EVENT_RING_BYTES);
} pbpf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pbpf_event_state);
} pbpf_event_state SEC(".maps");

/* The ring buffer carries raw bytes; anchor the event struct in the BTF for the layout
 * test. */
static const volatile struct pbpf_flow_event pbpf_btf_anchor_event __attribute__((used));

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

/* persona id -> its QoS (maps/abi/qos.h); no entry: no QoS. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBPF_MAX_PERSONAS);
	__type(key, __u32);
	__type(value, struct pbpf_qos);
} pbpf_qos SEC(".maps");

/* persona id -> its ingress policer's bucket (maps/abi/qos.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PBPF_MAX_PERSONAS);
	__type(key, __u32);
	__type(value, struct pbpf_ingress_bucket);
} pbpf_ingress_buckets SEC(".maps");

/* binding counter slot -> what that binding's workloads passed and dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PBPF_MAX_BINDING_SLOTS);
	__type(key, __u32);
	__type(value, struct pbpf_binding_counters);
} pbpf_binding_counters SEC(".maps");

/* Who the packet belongs to, for counters, conntrack and events. */
struct workload {
	__u64 id;        /* cgroup id, or netns cookie of an interface */
	__u32 ifindex;   /* 0: cgroup-bound */
	__u32 persona;
	__u32 slot;      /* the binding's counter slot; 0: not counted per binding */
	__u16 l3;        /* offset of the IP header */
	__u8 audit_mode; /* set once the persona's policy says so (event flag) */
	__u64 now;       /* CLOCK_MONOTONIC, tick-coarse, read once per packet */
};

/* binding counter slot, direction, reason -> that binding's dropped packets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PBPF_BINDING_DROP_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pbpf_binding_drop_key);
	__type(value, __u64);
} pbpf_binding_drops SEC(".maps");

/* The counters of the packet's binding in direction dir; NULL when it is not counted. */
static __always_inline struct pbpf_binding_dir_counters *binding_dir(const struct workload *w,
								    int dir)
{
	struct pbpf_binding_counters *bc;

	if (w->slot == 0)
		return NULL;
	bc = bpf_map_lookup_elem(&pbpf_binding_counters, &w->slot);
	return bc ? &bc->dir[dir & 1] : NULL;
}

/* A passed packet of a counted binding. */
static __noinline void count_binding(const struct workload *w, int dir, __u64 bytes)
{
	struct pbpf_binding_dir_counters *d = binding_dir(w, dir);

	if (!d)
		return;
	d->passed_packets++;
	d->passed_bytes += bytes;
}

/* A dropped packet of a counted binding, also by its reason. Inlined into count_drop():
 * as a subprogram of its own it would add a frame below count_drop() on call chains that
 * are at the verifier's stack limit already. */
static __always_inline void count_binding_drop(const struct workload *w, int dir, __u8 reason,
					       __u64 bytes)
{
	struct pbpf_binding_dir_counters *d = binding_dir(w, dir);
	struct pbpf_binding_drop_key k = {};
	__u64 one = 1, *n;

	if (!d)
		return;
	d->dropped_packets++;
	d->dropped_bytes += bytes;
	k.slot = w->slot;
	k.dir = dir & 1;
	k.reason = reason;
	n = bpf_map_lookup_elem(&pbpf_binding_drops, &k);
	if (n) {
		(*n)++; /* this CPU's value: exact without atomics */
		return;
	}
	/* The first drop of its kind (on any CPU): an insert sets this CPU's value to 1 and
	 * the others' to 0. Another CPU inserting first makes it fail; count into that one. */
	if (bpf_map_update_elem(&pbpf_binding_drops, &k, &one, BPF_NOEXIST) == 0)
		return;
	n = bpf_map_lookup_elem(&pbpf_binding_drops, &k);
	if (n)
		(*n)++;
}

enum count_kind {
	COUNT_ALLOWED,
	COUNT_AUDITED,
};

/* A packet that passes. Per-CPU slots, so plain increments are exact (no atomics needed). */
static __always_inline void count(const struct workload *w, int dir, enum count_kind kind,
				  __u64 bytes)
{
	struct pbpf_counters *c = bpf_map_lookup_elem(&pbpf_counters, &w->persona);
	struct pbpf_dir_counters *d;

	if (c) {
		d = &c->dir[dir & 1];
		if (kind == COUNT_ALLOWED) {
			d->allowed_packets++;
			d->allowed_bytes += bytes;
		} else {
			d->audited_packets++;
			d->audited_bytes += bytes;
		}
	}
	count_binding(w, dir, bytes);
}

/* A dropped packet, also counted by its reason (enum pbpf_event_reason). Kept apart from
 * count() so that the passing path carries none of it. */
static __noinline void count_drop(const struct workload *w, int dir, __u8 reason,
				       __u64 bytes)
{
	struct pbpf_counters *c = bpf_map_lookup_elem(&pbpf_counters, &w->persona);
	struct pbpf_dir_counters *d;
	__u32 r = reason < PBPF_DROP_REASON_SLOTS ? reason : 0;

	if (c) {
		d = &c->dir[dir & 1];
		d->denied_packets++;
		d->denied_bytes += bytes;
		d->dropped_by_reason[r]++;
	}
	count_binding_drop(w, dir, r, bytes);
}

/* Nearest bound ancestor of the packet's cgroup (the cgroup itself included), 0 if none;
 * *slot receives that binding's counter slot.
 * Inherited results are cached per cgroup, tagged with the binding epoch read before the
 * walk: a binding change racing with the walk bumps the epoch after writing, so a result
 * computed from stale bindings is never reused. */
static __always_inline __u32 resolve_persona(struct __sk_buff *skb, __u32 *slot)
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
	__u32 found_slot = 0;
	int i;

	b = bpf_map_lookup_elem(&pbpf_bindings, &cgid);
	if (b) {
		*slot = b->counter_slot;
		return b->persona_id;
	}

	g = bpf_map_lookup_elem(&pbpf_globals, &zero);
	if (g)
		epoch = g->binding_epoch;

	cached = bpf_map_lookup_elem(&pbpf_resolve_cache, &cgid);
	if (cached && cached->epoch == epoch) {
		*slot = cached->counter_slot;
		return cached->persona_id;
	}

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
			found_slot = b->counter_slot;
			break;
		}
	}

	__builtin_memset(&fresh, 0, sizeof(fresh));
	fresh.persona_id = persona;
	fresh.counter_slot = found_slot;
	fresh.epoch = epoch;
	bpf_map_update_elem(&pbpf_resolve_cache, &cgid, &fresh, BPF_ANY);
	*slot = found_slot;
	return persona;
}

/* The flow a packet belongs to, seen from the workload: local is the source of an egress
 * packet and the destination of an ingress one. */
static __always_inline void flow_key(const struct pkt *p, int dir, __u64 workload, __u32 ifindex,
				     struct pbpf_ct_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->workload = workload;
	k->ifindex = ifindex;
	k->family = p->family;
	k->proto = p->ipproto;
	if (dir == PBPF_DIR_EGRESS) {
		__builtin_memcpy(k->local, p->saddr, 16);
		__builtin_memcpy(k->remote, p->daddr, 16);
		k->local_port = p->sport;
		k->remote_port = p->dport;
	} else {
		__builtin_memcpy(k->local, p->daddr, 16);
		__builtin_memcpy(k->remote, p->saddr, 16);
		k->local_port = p->dport;
		k->remote_port = p->sport;
	}
	/* An echo's identifier names the flow both ways; the peer side has no port. */
	if (is_icmp_echo(p))
		k->remote_port = 0;
}

/* The flow an ICMP error is about: the embedded header is that of a packet travelling the
 * other way, so on ingress its source is the workload. Returns 0 when the key is made. */
static __always_inline int related_key(struct __sk_buff *skb, const struct pkt *p, int dir,
				       __u64 workload, __u32 ifindex, struct pbpf_ct_key *k)
{
	struct pkt inner;
	__u32 l3 = p->l4_off + 8;

	__builtin_memset(&inner, 0, sizeof(inner));
	if (p->family == PBPF_FAMILY_IPV4) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)) || ip.version != 4 || ip.ihl < 5)
			return -1;
		inner.family = PBPF_FAMILY_IPV4;
		inner.ipproto = ip.protocol;
		inner.l4_off = l3 + ip.ihl * 4;
		__builtin_memcpy(inner.saddr, &ip.saddr, 4);
		__builtin_memcpy(inner.daddr, &ip.daddr, 4);
	} else {
		__u8 fixed[8];

		if (bpf_skb_load_bytes(skb, l3, fixed, sizeof(fixed)) || (fixed[0] >> 4) != 6)
			return -1;
		if (bpf_skb_load_bytes(skb, l3 + 8, inner.saddr, 16) ||
		    bpf_skb_load_bytes(skb, l3 + 24, inner.daddr, 16))
			return -1;
		inner.family = PBPF_FAMILY_IPV6;
		/* Embedded extension headers are not walked: such an error is not related. */
		inner.ipproto = fixed[6];
		inner.l4_off = l3 + 40;
	}
	if (read_l4(skb, &inner, 0) != PARSE_OK)
		return -1;
	/* Errors are never about errors. */
	if (is_icmp_error(&inner))
		return -1;
	flow_key(&inner, dir == PBPF_DIR_EGRESS ? PBPF_DIR_INGRESS : PBPF_DIR_EGRESS, workload,
		 ifindex, k);
	return 0;
}

/* Nanoseconds a flow lives after its last packet. */
static __always_inline __u64 ct_timeout(const struct pbpf_ct_key *k, const struct pbpf_ct_value *v)
{
	return pbpf_ct_timeout_s(k->proto, v->state) * NSEC_PER_SEC;
}

/* State of a new flow from its first packet. TCP without a SYN is picked up mid-stream
 * (the flow predates the agent, or its entry was evicted) as established. */
static __always_inline __u8 ct_initial_state(const struct pkt *p)
{
	if (p->ipproto != IPPROTO_TCP_)
		return PBPF_CT_NEW;
	if (p->tcp_flags & TCP_RST_)
		return PBPF_CT_CLOSED;
	if ((p->tcp_flags & (TCP_SYN_ | TCP_ACK_)) == TCP_SYN_)
		return PBPF_CT_NEW;
	return PBPF_CT_ESTABLISHED;
}

static __always_inline void ct_advance(struct pbpf_ct_value *v, const struct pkt *p, int dir)
{
	if (p->ipproto == IPPROTO_TCP_) {
		if (p->tcp_flags & TCP_RST_) {
			v->state = PBPF_CT_CLOSED;
			return;
		}
		if (p->tcp_flags & TCP_FIN_) {
			v->flags |= dir == PBPF_DIR_EGRESS ? PBPF_CT_F_FIN_LOCAL : PBPF_CT_F_FIN_REMOTE;
			v->state = (v->flags & (PBPF_CT_F_FIN_LOCAL | PBPF_CT_F_FIN_REMOTE)) ==
						   (PBPF_CT_F_FIN_LOCAL | PBPF_CT_F_FIN_REMOTE) ?
					   PBPF_CT_CLOSED :
					   PBPF_CT_CLOSING;
			return;
		}
	}
	if (v->state == PBPF_CT_NEW && dir != v->origin)
		v->state = PBPF_CT_ESTABLISHED;
}

/* prefix_masks[len]: the network-order masks of a /len prefix over the four 32-bit
 * words of an address. A table, not arithmetic: computing a mask takes branches per
 * word, and every branch multiplies the states the verifier walks in the loop below. */
#define CLAMP32(b) ((b) < 0 ? 0 : (b) > 32 ? 32 : (b))
#define M32(bits) ((__u32)(0xffffffff00000000ULL >> CLAMP32(bits)))
#define BE32(x) ((((x) & 0xffU) << 24) | (((x) & 0xff00U) << 8) | (((x) >> 8) & 0xff00U) | ((x) >> 24))
#define MASK4(len) { BE32(M32(len)), BE32(M32((len) - 32)), BE32(M32((len) - 64)), BE32(M32((len) - 96)) }
#define MASK4x8(l) MASK4(l), MASK4(l + 1), MASK4(l + 2), MASK4(l + 3), MASK4(l + 4), MASK4(l + 5), \
	MASK4(l + 6), MASK4(l + 7)
static const __u32 prefix_masks[129][4] = {
	MASK4x8(0),  MASK4x8(8),  MASK4x8(16), MASK4x8(24), MASK4x8(32),  MASK4x8(40),
	MASK4x8(48), MASK4x8(56), MASK4x8(64), MASK4x8(72), MASK4x8(80),  MASK4x8(88),
	MASK4x8(96), MASK4x8(104), MASK4x8(112), MASK4x8(120), MASK4(128),
};

/* Longest-prefix match in one address table (kind, dir, family) of a policy map, by
 * tuple-space search: the table's LENGTHS entries list the prefix lengths its entries
 * use, longest first; each costs one exact lookup of the address masked to it, so the
 * cost follows the number of distinct lengths, not of entries. `a`: the address as four
 * network-order words (IPv4 in a[0], the rest zero). NULL: no entry matches. */
static __always_inline struct pbpf_policy_value *lookup_address(void *map, __u8 kind, __u8 dir,
								__u8 family, const __u32 *a)
{
	struct pbpf_policy_value *v, *found = NULL;
	struct pbpf_policy_lengths *lens;
	struct pbpf_policy_key key;
	__u32 *kw = (__u32 *)key.data;
	struct bpf_iter_num chunks, slots;
	int *c, *i, len, ended = 0;

	/* An open-coded iterator over the chunks: the verifier checks its body until the
	 * states repeat instead of once per chunk, as it would a bounded loop. */
	bpf_iter_num_new(&chunks, 0, PBPF_POLICY_LENGTH_CHUNKS);
	while ((c = bpf_iter_num_next(&chunks))) {
		/* One key buffer: the chunk's LENGTHS key, then the probes (which overwrite the
		 * chunk byte in data[0]). */
		__builtin_memset(&key, 0, sizeof(key));
		key.kind = PBPF_ENTRY_LENGTHS;
		key.dir = dir;
		key.family_or_proto = family;
		key.table = kind;
		key.data[0] = *c;
		lens = bpf_map_lookup_elem(map, &key);
		if (!lens)
			break;
		key.kind = kind;
		key.table = 0;
		bpf_iter_num_new(&slots, 0, PBPF_POLICY_LENGTHS_PER_ENTRY);
		while ((i = bpf_iter_num_next(&slots))) {
			if (*i < 0 || *i >= PBPF_POLICY_LENGTHS_PER_ENTRY)
				break;
			len = lens->len[*i];
			if (len > 128) { /* PBPF_POLICY_LENGTHS_END */
				ended = 1;
				break;
			}
			key.prefixlen = PBPF_POLICY_HEADER_BITS + len;
			kw[0] = a[0] & prefix_masks[len][0];
			kw[1] = a[1] & prefix_masks[len][1];
			kw[2] = a[2] & prefix_masks[len][2];
			kw[3] = a[3] & prefix_masks[len][3];
			v = bpf_map_lookup_elem(map, &key);
			if (v) {
				found = v;
				break;
			}
		}
		bpf_iter_num_destroy(&slots);
		if (found || ended)
			break;
	}
	bpf_iter_num_destroy(&chunks);
	return found;
}

/* Longest-prefix match in a port table (kind, bucket) for one class: the lengths 16..1
 * the class's ADDR entry lists in port_lengths, then the class's catch-all (length 0). */
static __always_inline struct pbpf_policy_value *lookup_port(void *map, __u8 kind, __u8 bucket,
							     __u32 class_id, __u32 lengths,
							     __u16 port)
{
	struct pbpf_policy_value *v = NULL;
	struct pbpf_policy_key key;
	struct bpf_iter_num it;
	__u32 len, bit, masked;
	int *i;

	__builtin_memset(&key, 0, sizeof(key));
	key.kind = kind;
	key.family_or_proto = bucket;
	key.data[0] = class_id >> 24;
	key.data[1] = class_id >> 16;
	key.data[2] = class_id >> 8;
	key.data[3] = class_id;
	bpf_iter_num_new(&it, 0, 16);
	while (lengths && (i = bpf_iter_num_next(&it))) {
		len = 16 - (*i & 15); /* 16, 15, ..., 1 */
		bit = 1U << (len - 1);
		if (!(lengths & bit))
			continue;
		lengths &= ~bit;
		masked = port & (0xffffU << (16 - len));
		key.prefixlen = PBPF_POLICY_HEADER_BITS + PBPF_POLICY_CLASS_BITS + len;
		key.data[4] = masked >> 8;
		key.data[5] = masked;
		v = bpf_map_lookup_elem(map, &key);
		if (v)
			break;
	}
	bpf_iter_num_destroy(&it);
	if (v)
		return v;
	key.prefixlen = PBPF_POLICY_HEADER_BITS + PBPF_POLICY_CLASS_BITS;
	key.data[4] = 0;
	key.data[5] = 0;
	return bpf_map_lookup_elem(map, &key);
}

/* Destination port of a flow's first packet, host order; 0 without ports. */
static __always_inline __u16 flow_port(const struct pbpf_ct_key *k, __u8 bucket, int origin)
{
	if (bucket != PBPF_PROTO_TCP && bucket != PBPF_PROTO_UDP)
		return 0;
	return bpf_ntohs(origin == PBPF_DIR_EGRESS ? k->remote_port : k->local_port);
}

/* The policy's decision for a flow's first packet: origin is the direction of the flow's
 * first packet; the flow's remote address and destination port are looked up. 0 when
 * the map answered. Not inlined: its probe keys get a frame of their own, which the
 * callers' frames do not carry. */
static __noinline int policy_decide(void *map, const struct pbpf_ct_key *flow,
					 int origin, __u8 bucket, struct pbpf_policy_value *out)
{
	struct pbpf_policy_value *v;

	v = lookup_address(map, PBPF_ENTRY_ADDR, origin, flow->family,
			   (const __u32 *)flow->remote);
	if (!v)
		return -1;
	v = lookup_port(map, PBPF_ENTRY_PORT, bucket, v->class_id, v->port_lengths,
			flow_port(flow, bucket, origin));
	if (!v)
		return -1;
	*out = *v;
	return 0;
}

/* Loopback and link-local remotes (127/8, 169.254/16, ::1, fe80::/10) never leave the
 * host or its link: no country to check. */
static __always_inline int host_or_link_local(const struct pbpf_ct_key *flow)
{
	const __u8 *r = flow->remote;
	const __u64 *w = (const __u64 *)flow->remote;

	if (flow->family == PBPF_FAMILY_IPV4)
		return r[0] == 127 || (r[0] == 169 && r[1] == 254);
	return (w[0] == 0 && w[1] == bpf_cpu_to_be64(1)) ||
	       (r[0] == 0xfe && (r[1] & 0xc0) == 0x80);
}

/* Sovereignty: is the flow's remote address outside the persona's countries? `flags` are
 * the persona's (PBPF_POLICY_F_SOV_*, carried by its PORT entries); the policy map holds
 * its SOV_EXEMPT ranges and SOV_COUNTRY list. A loopback or link-local remote and an
 * exempt one are never a violation; a
 * remote without geo data (or no dataset) is one unless the persona allows unknown.
 * *country gets the remote's country letters (c0 << 8 | c1), 0 when unknown. Called for
 * the first packet of a flow only: the flow's entry caches the outcome. Not inlined: its
 * keys get a frame of their own instead of growing every program's. */
static __noinline int sov_violation(void *policy, const struct pbpf_ct_key *flow, __u8 flags,
				    __u16 *country)
{
	union {
		struct pbpf_geo_key gk;
		struct pbpf_policy_key pk;
	} k;
	struct pbpf_geo_value *gv;
	struct pbpf_geo4_block *b;
	const __u8 *r = flow->remote;
	__u32 zero = 0, i;
	__u16 index = 0; /* the country's bit index + 1; 0: none */
	void *map;
	int listed;

	*country = 0;
	if (host_or_link_local(flow))
		return 0;
	if (lookup_address(policy, PBPF_ENTRY_SOV_EXEMPT, 0, flow->family,
			   (const __u32 *)flow->remote))
		return 0;
	map = flow->family == PBPF_FAMILY_IPV4 ? bpf_map_lookup_elem(&pbpf_geo4, &zero) : NULL;
	if (map) {
		/* DIR-24-8: the /24's entry, or the entry of the address in its /24's block. */
		i = (__u32)r[0] << 8 | r[1];
		b = bpf_map_lookup_elem(map, &i);
		if (b) {
			index = b->entry[r[2]];
			if (index & PBPF_GEO4_GROUP) {
				i = PBPF_GEO4_TOP_BLOCKS + (index & ~PBPF_GEO4_GROUP);
				b = bpf_map_lookup_elem(map, &i);
				index = b ? b->entry[r[3]] : 0;
			}
		}
	} else {
		map = bpf_map_lookup_elem(&pbpf_geo, &zero);
		if (map) {
			__builtin_memset(&k.gk, 0, sizeof(k.gk));
			k.gk.prefixlen = PBPF_GEO_FAMILY_BITS +
					 (flow->family == PBPF_FAMILY_IPV4 ? 32 : 128);
			k.gk.family = flow->family;
			__builtin_memcpy(k.gk.addr, flow->remote, sizeof(k.gk.addr));
			gv = bpf_map_lookup_elem(map, &k.gk);
			if (gv)
				index = gv->country + 1;
		}
	}
	if (index == 0 || index > PBPF_COUNTRY_BITS)
		return !(flags & PBPF_POLICY_F_SOV_UNKNOWN_OK);
	index -= 1;
	*country = (__u16)('A' + index / 26) << 8 | ('A' + index % 26);
	__builtin_memset(&k.pk, 0, sizeof(k.pk));
	k.pk.prefixlen = PBPF_POLICY_HEADER_BITS + 16;
	k.pk.kind = PBPF_ENTRY_SOV_COUNTRY;
	k.pk.data[0] = index >> 8;
	k.pk.data[1] = index;
	listed = bpf_map_lookup_elem(policy, &k.pk) != NULL;
	return (flags & PBPF_POLICY_F_SOV_DENY_LIST) ? listed : !listed;
}

/* Token bucket per CPU: refill by elapsed time, spend one token per event. */
static __always_inline int event_budget(struct pbpf_event_state *st, __u64 now)
{
	struct pbpf_globals *g;
	__u32 zero = 0;
	__u64 rate, burst, elapsed, add;

	g = bpf_map_lookup_elem(&pbpf_globals, &zero);
	if (!g || g->event_rate == 0)
		return 0;
	rate = g->event_rate;
	burst = g->event_burst + 1;
	elapsed = now - st->last_ns;
	if (elapsed >= 10 * NSEC_PER_SEC || st->last_ns == 0) {
		st->tokens = burst;
		st->last_ns = now;
	} else {
		add = elapsed * rate / NSEC_PER_SEC;
		if (add > 0) {
			st->tokens = st->tokens + add > burst ? burst : st->tokens + add;
			/* Advance by what was added only: the clock moves in ticks, and dropping
			 * the remainder would lose up to one token per tick. */
			st->last_ns += add * NSEC_PER_SEC / rate;
		}
	}
	if (st->tokens == 0) {
		st->rate_limited++;
		return 0;
	}
	st->tokens--;
	return 1;
}

/* country: the remote's country letters (c0 << 8 | c1) for PBPF_REASON_SOVEREIGNTY; 0:
 * none or unknown. */
static __always_inline void emit(const struct workload *w, const struct pkt *p, int dir,
				 __u8 verdict, __u8 reason, __u32 rule_id, __u32 len, __u16 country)
{
	struct pbpf_event_state *st;
	struct pbpf_flow_event *e;
	__u32 zero = 0;
	__u64 now = w->now;

	st = bpf_map_lookup_elem(&pbpf_event_state, &zero);
	if (!st || !event_budget(st, now))
		return;
	e = bpf_ringbuf_reserve(&pbpf_events, sizeof(*e), 0);
	if (!e) {
		st->ring_full++;
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->workload = w->id;
	e->ifindex = w->ifindex;
	e->persona_id = w->persona;
	e->rule_id = rule_id;
	e->len = len;
	e->verdict = verdict;
	e->reason = reason;
	e->dir = dir;
	e->family = p->family;
	e->proto = p->ipproto;
	e->tcp_flags = p->tcp_flags;
	if (p->bucket == PBPF_PROTO_ICMP || p->bucket == PBPF_PROTO_ICMPV6) {
		e->sport = bpf_htons(p->icmp_type);
		e->dport = bpf_htons(p->icmp_code);
	} else {
		e->sport = p->sport;
		e->dport = p->dport;
	}
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	if (w->ifindex)
		e->flags |= PBPF_EV_F_INTERFACE;
	e->country[0] = country >> 8;
	e->country[1] = country;
	if (w->audit_mode)
		e->flags |= PBPF_EV_F_AUDIT;
	st->emitted++;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline __u64 policy_epoch(void)
{
	struct pbpf_globals *g;
	__u32 zero = 0;

	g = bpf_map_lookup_elem(&pbpf_globals, &zero);
	return g ? g->policy_epoch : 0;
}

static __always_inline int is_echo_request(const struct pkt *p)
{
	return (p->bucket == PBPF_PROTO_ICMP && p->icmp_type == 8) ||
	       (p->bucket == PBPF_PROTO_ICMPV6 && p->icmp_type == 128);
}

/* Neighbour discovery (router/neighbour solicitation and advertisement, redirect) with
 * hop limit 255, which no router forwards: IPv6 does not work without it, and its
 * answers come from other addresses than the questions went to, so no flow covers them. */
static __always_inline int is_neighbour_discovery(const struct pkt *p)
{
	return p->bucket == PBPF_PROTO_ICMPV6 && p->icmp_type >= 133 && p->icmp_type <= 137 &&
	       p->ttl == 255;
}

static __always_inline void frag_key(const struct pkt *p, const struct workload *w,
				     struct pbpf_frag_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->workload = w->id;
	k->ifindex = w->ifindex;
	k->id = p->frag_id;
	k->family = p->family;
	k->proto = p->ipproto;
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
}

/* The verdict of a packet of workload w (w->persona != 0).
 * Decisions beyond the contract (docs/architecture.md):
 *  - not IPv4/IPv6 (cannot reach cgroup_skb of inet sockets): passed, not counted;
 *  - a truncated/malformed packet, a missing policy map, or a policy lookup miss (an
 *    incomplete image): fail closed, dropped and counted as denied;
 *  - a tracked flow passes with its cached verdict while persona and policy epoch are
 *    those it was decided under; else it is decided again as if new (from its origin's
 *    side) and dropped, its entry removed, if the new rules deny it. */
/* PBPF_CT_F_POLICED for a flow decided now, if the persona limits its ingress rate (not
 * in audit mode, which never drops). */
static __always_inline __u8 policed_flag(const struct workload *w)
{
	struct pbpf_qos *q;

	if (w->audit_mode)
		return 0;
	q = bpf_map_lookup_elem(&pbpf_qos, &w->persona);
	return (q && (q->flags & PBPF_QOS_F_INGRESS_LIMIT)) ? PBPF_CT_F_POLICED : 0;
}

/* Takes len bytes from the persona's ingress bucket: 1 when they fit, 0 when the packet
 * is over the rate (and is to be dropped). A token bucket shared by every CPU, refilled
 * by the time elapsed since its last refill (at most a second's worth: a bucket is never
 * deeper than its burst anyway). */
static __always_inline int ingress_admit(__u32 persona, __u64 len, __u64 now)
{
	struct pbpf_ingress_bucket *b;
	struct pbpf_qos *q;
	__u64 rate, cap, cost, elapsed;
	int ok = 0;

	q = bpf_map_lookup_elem(&pbpf_qos, &persona);
	if (!q || !(q->flags & PBPF_QOS_F_INGRESS_LIMIT))
		return 1;
	b = bpf_map_lookup_elem(&pbpf_ingress_buckets, &persona);
	if (!b)
		return 1;
	rate = q->ingress_rate_bps / 8;
	cap = q->ingress_burst_bytes * NSEC_PER_SEC;
	cost = len * NSEC_PER_SEC;
	bpf_spin_lock(&b->lock);
	if (now > b->last_ns) {
		elapsed = now - b->last_ns;
		if (elapsed > NSEC_PER_SEC)
			elapsed = NSEC_PER_SEC;
		b->credit += elapsed * rate;
		if (b->credit > cap)
			b->credit = cap;
		b->last_ns = now;
	}
	/* A packet larger than the whole bucket (a GRO aggregate under a small burst) passes
	 * when the bucket is full, and empties it: never passable otherwise. */
	if (b->credit >= cost || b->credit == cap) {
		b->credit = b->credit >= cost ? b->credit - cost : 0;
		ok = 1;
	}
	bpf_spin_unlock(&b->lock);
	return ok;
}

/* A tracked flow decided under other rules (another persona, an older policy epoch):
 * decided again from its origin's side, as if new. PBPF_PASS: the flow goes on (its entry
 * now carries the new decision); PBPF_DROP: the new rules deny it (entry removed, drop
 * counted and reported). Not inlined: the rare path gets a stack frame of its own. */
static __noinline int redecide(struct __sk_buff *skb, int dir, struct workload *w,
			       const struct pkt *p, struct pbpf_ct_value *ct)
{
	struct pbpf_policy_value pv;
	struct pbpf_ct_key key;
	__u16 country = 0;
	__u8 reason = PBPF_REASON_NO_POLICY;
	void *policy;

	flow_key(p, dir, w->id, w->ifindex, &key);
	policy = bpf_map_lookup_elem(&pbpf_policies, &w->persona);
	if (!policy || policy_decide(policy, &key, ct->origin, p->bucket, &pv)) {
		bpf_map_delete_elem(&pbpf_conntrack, &key);
		count_drop(w, dir, reason, skb->len);
		emit(w, p, dir, PBPF_EV_DROPPED, reason, 0, skb->len, 0);
		return PBPF_DROP;
	}
	w->audit_mode = (pv.flags & PBPF_POLICY_F_AUDIT) != 0;
	reason = PBPF_REASON_REEVALUATED;
	if (pv.verdict == PBPF_VERDICT_ALLOW && (pv.flags & PBPF_POLICY_F_SOVEREIGNTY) &&
	    !(pv.flags & PBPF_POLICY_F_SOV_LOG_ONLY) &&
	    sov_violation(policy, &key, pv.flags, &country)) {
		pv.verdict = PBPF_VERDICT_DENY;
		reason = PBPF_REASON_SOVEREIGNTY;
	}
	if (pv.verdict != PBPF_VERDICT_ALLOW && !w->audit_mode) {
		bpf_map_delete_elem(&pbpf_conntrack, &key);
		count_drop(w, dir, reason, skb->len);
		emit(w, p, dir, PBPF_EV_DROPPED, reason, pv.rule_id, skb->len, country);
		return PBPF_DROP;
	}
	ct->persona_id = w->persona;
	ct->policy_epoch = policy_epoch();
	ct->rule_id = pv.rule_id;
	ct->flags = (ct->flags & ~PBPF_CT_F_POLICED) | policed_flag(w);
	if (pv.verdict == PBPF_VERDICT_ALLOW) {
		ct->flags &= ~PBPF_CT_F_AUDIT;
	} else {
		/* A dry run of new rules reports the tracked flows they would cut. */
		if (!(ct->flags & PBPF_CT_F_AUDIT))
			emit(w, p, dir, PBPF_EV_AUDIT, reason, pv.rule_id, skb->len, country);
		ct->flags |= PBPF_CT_F_AUDIT;
	}
	return PBPF_PASS;
}

/* An ICMP error about a flow tracked for this workload and persona under the current
 * rules: counted and reported with that flow's verdict; 1 when it passes so. */
static __noinline int related_pass(struct __sk_buff *skb, int dir, struct workload *w,
				   const struct pkt *p)
{
	struct pbpf_ct_key rkey;
	struct pbpf_ct_value *rel;
	int audited;

	if (related_key(skb, p, dir, w->id, w->ifindex, &rkey) != 0)
		return 0;
	rel = bpf_map_lookup_elem(&pbpf_conntrack, &rkey);
	if (!rel || rel->persona_id != w->persona || rel->policy_epoch != policy_epoch() ||
	    w->now > rel->last_seen_ns + ct_timeout(&rkey, rel))
		return 0;
	audited = (rel->flags & PBPF_CT_F_AUDIT) != 0;
	count(w, dir, audited ? COUNT_AUDITED : COUNT_ALLOWED, skb->len);
	emit(w, p, dir, audited ? PBPF_EV_AUDIT : PBPF_EV_ALLOWED, PBPF_REASON_RELATED,
	     rel->rule_id, skb->len, 0);
	return 1;
}

/* Tracks a new flow that passes: its entry, with the decision packed in `decided` (BPF
 * calls take five arguments): flags in bits 0-7, the packet's direction in 8-15, the rule
 * id in 32-63. 1 when its persona's ingress rate drops the packet instead (the caller
 * counts it: a call from here would make the deepest chain of frames too deep). */
static __noinline int track(struct __sk_buff *skb, const struct workload *w,
			    const struct pkt *p, const struct pbpf_ct_key *key, __u64 decided)
{
	struct pbpf_ct_value fresh;
	int dir = (decided >> 8) & 1;
	__u64 bytes = skb->len;
	__u64 now = w->now;

	__builtin_memset(&fresh, 0, sizeof(fresh));
	fresh.created_ns = now;
	fresh.last_seen_ns = now;
	fresh.policy_epoch = policy_epoch();
	fresh.packets[dir & 1] = 1;
	fresh.bytes[dir & 1] = bytes;
	fresh.persona_id = w->persona;
	fresh.rule_id = decided >> 32;
	fresh.origin = dir;
	fresh.state = ct_initial_state(p);
	fresh.flags = (__u8)decided | policed_flag(w);
	if (dir == PBPF_DIR_INGRESS && (fresh.flags & PBPF_CT_F_POLICED) &&
	    !ingress_admit(w->persona, bytes, now))
		return 1;
	/* A full LRU evicts its oldest flow; a failed insert only costs the next packet
	 * another policy lookup. */
	bpf_map_update_elem(&pbpf_conntrack, key, &fresh, BPF_ANY);
	return 0;
}

/* A packet no tracked flow covers: an ICMP error about a tracked flow passes with it;
 * anything else is the first packet of a new flow, decided by the policy (then by the
 * remote's country, for a persona with a country list) and tracked when it passes. Not
 * inlined, for the same reason as redecide(): the established path keeps a small frame. */
static __noinline int decide_new(struct __sk_buff *skb, int dir, struct workload *w,
				 const struct pkt *p, const struct pbpf_ct_key *key)
{
	struct pbpf_policy_value pv;
	__u64 bytes = skb->len;
	__u16 country = 0;
	__u8 reason;
	void *policy;

	/* An ICMP error about a tracked flow is part of it. */
	if (is_icmp_error(p) && related_pass(skb, dir, w, p))
		return PBPF_PASS;

	policy = bpf_map_lookup_elem(&pbpf_policies, &w->persona);
	if (!policy || policy_decide(policy, key, dir, p->bucket, &pv)) {
		reason = w->persona == PBPF_PERSONA_FAIL_CLOSED ? PBPF_REASON_FAIL_CLOSED
								: PBPF_REASON_NO_POLICY;
		count_drop(w, dir, reason, bytes);
		emit(w, p, dir, PBPF_EV_DROPPED, reason, 0, skb->len, 0);
		return PBPF_DROP;
	}
	w->audit_mode = (pv.flags & PBPF_POLICY_F_AUDIT) != 0;
	reason = pv.rule_id ? PBPF_REASON_RULE : PBPF_REASON_DEFAULT;
	/* Allowed by the rules: then the remote's country (`on-violation log` lets it pass,
	 * reported with its country). */
	if (pv.verdict == PBPF_VERDICT_ALLOW && (pv.flags & PBPF_POLICY_F_SOVEREIGNTY) &&
	    sov_violation(policy, key, pv.flags, &country)) {
		reason = PBPF_REASON_SOVEREIGNTY;
		if (!(pv.flags & PBPF_POLICY_F_SOV_LOG_ONLY))
			pv.verdict = PBPF_VERDICT_DENY;
	}
	if (pv.verdict != PBPF_VERDICT_ALLOW && !w->audit_mode) {
		count_drop(w, dir, reason, bytes);
		emit(w, p, dir, PBPF_EV_DROPPED, reason, pv.rule_id, skb->len, country);
		return PBPF_DROP;
	}

	if (track(skb, w, p, key,
		  (__u64)pv.rule_id << 32 | (__u64)dir << 8 |
			  (pv.verdict != PBPF_VERDICT_ALLOW ? PBPF_CT_F_AUDIT : 0))) {
		count_drop(w, dir, PBPF_REASON_RATE_LIMIT, bytes);
		return PBPF_DROP;
	}
	if (pv.verdict == PBPF_VERDICT_ALLOW) {
		count(w, dir, COUNT_ALLOWED, bytes);
		emit(w, p, dir, PBPF_EV_ALLOWED, reason, pv.rule_id, skb->len, country);
	} else {
		count(w, dir, COUNT_AUDITED, bytes);
		emit(w, p, dir, PBPF_EV_AUDIT, reason, pv.rule_id, skb->len, country);
	}
	return PBPF_PASS;
}

static __always_inline int decide(struct __sk_buff *skb, int dir, struct workload *w,
				  const struct pkt *p)
{
	struct pbpf_ct_key key;
	struct pbpf_ct_value *ct;
	__u64 bytes = skb->len;
	__u64 now;

	if (is_neighbour_discovery(p)) {
		count(w, dir, COUNT_ALLOWED, bytes);
		return PBPF_PASS;
	}

	flow_key(p, dir, w->id, w->ifindex, &key);
	now = w->now;
	ct = bpf_map_lookup_elem(&pbpf_conntrack, &key);
	/* Written as a sum: another CPU may have stamped a later last_seen meanwhile. A new
	 * SYN on a closed flow starts a new one; an echo request against the direction of
	 * the flow is the peer's own ping, not a reply. */
	if (!ct || now > ct->last_seen_ns + ct_timeout(&key, ct) ||
	    (ct->state == PBPF_CT_CLOSED && (p->tcp_flags & (TCP_SYN_ | TCP_ACK_)) == TCP_SYN_) ||
	    (is_echo_request(p) && dir != ct->origin))
		return decide_new(skb, dir, w, p, &key);

	if ((ct->persona_id != w->persona || ct->policy_epoch != policy_epoch()) &&
	    redecide(skb, dir, w, p, ct) == PBPF_DROP)
		return PBPF_DROP;
	/* Over the persona's ingress rate: dropped before it changes the flow's state. */
	if (dir == PBPF_DIR_INGRESS && (ct->flags & PBPF_CT_F_POLICED) &&
	    !ingress_admit(w->persona, bytes, now)) {
		count_drop(w, dir, PBPF_REASON_RATE_LIMIT, bytes);
		return PBPF_DROP;
	}
	ct_advance(ct, p, dir);
	ct->last_seen_ns = now;
	ct->packets[dir & 1]++;
	ct->bytes[dir & 1] += bytes;
	count(w, dir, (ct->flags & PBPF_CT_F_AUDIT) ? COUNT_AUDITED : COUNT_ALLOWED, bytes);
	return PBPF_PASS;
}

/* Parses, handles what is not a plain packet (not IP, malformed, later fragments), then
 * decide(); remembers the verdict of a first fragment for the later ones. */
/* A later fragment of a datagram whose first fragment passed: 1, counted as it was. */
static __noinline int fragment_pass(struct __sk_buff *skb, int dir, struct workload *w,
				    const struct pkt *p)
{
	struct pbpf_frag_value *fv;
	struct pbpf_frag_key fk;

	frag_key(p, w, &fk);
	fv = bpf_map_lookup_elem(&pbpf_fragments, &fk);
	if (!fv || fv->persona_id != w->persona ||
	    w->now > fv->created_ns + PBPF_FRAG_TIMEOUT * NSEC_PER_SEC)
		return 0;
	count(w, dir, (fv->flags & PBPF_CT_F_AUDIT) ? COUNT_AUDITED : COUNT_ALLOWED, skb->len);
	return 1;
}

/* A first fragment passed: its datagram's later fragments will too. */
static __noinline void remember_fragment(const struct workload *w, const struct pkt *p)
{
	struct pbpf_frag_value fnew;
	struct pbpf_frag_key fk;

	frag_key(p, w, &fk);
	__builtin_memset(&fnew, 0, sizeof(fnew));
	fnew.created_ns = w->now;
	fnew.persona_id = w->persona;
	fnew.flags = w->audit_mode ? PBPF_CT_F_AUDIT : 0;
	bpf_map_update_elem(&pbpf_fragments, &fk, &fnew, BPF_ANY);
}

static __always_inline int evaluate(struct __sk_buff *skb, int dir, struct workload *w)
{
	struct pkt p;
	__u8 reason = PBPF_REASON_MALFORMED;
	int rc;

	__builtin_memset(&p, 0, sizeof(p));
	/* Timeouts are seconds and the event budget refills per tick, so the coarse clock
	 * (no clock-source read, which is slow on a VM's kvm-clock) is precise enough. */
	w->now = bpf_ktime_get_coarse_ns();
	rc = parse(skb, w->l3, &p);
	if (rc == PARSE_NOT_IP) {
		/* cgroup_skb of inet sockets sees only IP. An interface carries anything: ARP
		 * passes (nothing works without it), the rest is not judged and fails closed. */
		if (!w->ifindex || skb->protocol == bpf_htons(ETH_P_ARP))
			return PBPF_PASS;
		reason = PBPF_REASON_NOT_IP;
		goto deny;
	}
	if (rc != PARSE_OK)
		goto deny;

	if (p.later_fragment) {
		if (fragment_pass(skb, dir, w, &p))
			return PBPF_PASS;
		reason = PBPF_REASON_FRAGMENT;
		goto deny;
	}

	rc = decide(skb, dir, w, &p);
	if (rc == PBPF_PASS && p.first_fragment)
		remember_fragment(w, &p);
	return rc;

deny:
	count_drop(w, dir, reason, skb->len);
	emit(w, &p, dir, PBPF_EV_DROPPED, reason, 0, skb->len, 0);
	return PBPF_DROP;
}

static __always_inline int cgroup_evaluate(struct __sk_buff *skb, int dir)
{
	struct workload w;

	__builtin_memset(&w, 0, sizeof(w));
	w.persona = resolve_persona(skb, &w.slot);
	if (w.persona == 0) {
		count(&w, dir, COUNT_ALLOWED, skb->len);
		return PBPF_PASS;
	}
	w.id = bpf_skb_cgroup_id(skb);
	return evaluate(skb, dir, &w);
}

/* The kernel's sk_buff behind the context (kfunc, Linux 6.3; TCX, which the agent attaches
 * these programs with, needs 6.6). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* The netns of the interface the program runs on. bpf_get_netns_cookie() would name the
 * netns of the packet's socket, which for traffic from a workload behind a veth is still
 * the workload's own (the socket stays attached up to the host side's tc ingress). */
static __always_inline __u64 interface_netns_cookie(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);

	/* Plain loads through BTF pointers (the verifier turns them into fault-safe loads),
	 * cheaper than bpf_probe_read_kernel() calls on every packet. */
	return kskb->dev->nd_net.net->net_cookie;
}

/* An interface-bound workload: the host's side of its veth or tap. What the workload
 * sends arrives at the interface's tc ingress (the workload's egress) and what it
 * receives leaves through tc egress. Unbound interfaces pass (the agent attaches only
 * to bound ones). */
static __always_inline int tc_evaluate(struct __sk_buff *skb, int dir)
{
	struct pbpf_if_key ik;
	struct pbpf_binding *b;
	struct workload w;

	__builtin_memset(&ik, 0, sizeof(ik));
	ik.netns_cookie = interface_netns_cookie(skb);
	ik.ifindex = skb->ifindex;
	b = bpf_map_lookup_elem(&pbpf_if_bindings, &ik);
	if (!b || b->persona_id == 0)
		return TC_ACT_OK_;
	__builtin_memset(&w, 0, sizeof(w));
	w.persona = b->persona_id;
	w.id = ik.netns_cookie;
	w.ifindex = ik.ifindex;
	w.slot = b->counter_slot;
	w.l3 = (b->flags & PBPF_BINDING_F_L3) ? 0 : ETH_HLEN_;
	if (evaluate(skb, dir, &w) != PBPF_PASS)
		return TC_ACT_SHOT_;
	/* What the workload sends is forwarded by the host, which orphans the packet: carry
	 * the persona to the egress interfaces' classifier in the mark (it survives within
	 * this netns), for personas with a class or a DSCP only (other mark bits are left
	 * alone). */
	if (dir == PBPF_DIR_EGRESS) {
		struct pbpf_qos *q = bpf_map_lookup_elem(&pbpf_qos, &w.persona);

		if (q && (q->flags & (PBPF_QOS_F_EGRESS_CLASS | PBPF_QOS_F_DSCP)))
			skb->mark = (skb->mark & ~PBPF_MARK_PERSONA_MASK) |
				    (w.persona << PBPF_MARK_PERSONA_SHIFT);
	}
	return TC_ACT_OK_;
}

/* Rewrites the DSCP of an IPv4 or IPv6 packet at offset l3, keeping ECN (and fixing the
 * IPv4 header checksum; no L4 checksum covers the traffic class). */
static __always_inline void set_dscp(struct __sk_buff *skb, __u32 l3, __u8 dscp)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	__u8 tos;

	if (proto == ETH_P_IP) {
		__be16 old_word, new_word;

		if (bpf_skb_load_bytes(skb, l3, &old_word, 2) != 0)
			return;
		tos = ((__u8 *)&old_word)[1];
		if ((tos >> 2) == dscp)
			return;
		new_word = old_word;
		((__u8 *)&new_word)[1] = (__u8)((dscp << 2) | (tos & 0x3));
		if (bpf_l3_csum_replace(skb, l3 + 10, old_word, new_word, 2) != 0)
			return;
		bpf_skb_store_bytes(skb, l3, &new_word, 2, 0);
	} else if (proto == ETH_P_IPV6) {
		__u8 b[2];

		/* version(4) traffic class(8) flow label(20): the class spans bytes 0 and 1. */
		if (bpf_skb_load_bytes(skb, l3, b, 2) != 0)
			return;
		tos = (__u8)((b[0] << 4) | (b[1] >> 4));
		if ((tos >> 2) == dscp)
			return;
		tos = (__u8)((dscp << 2) | (tos & 0x3));
		b[0] = (__u8)((b[0] & 0xf0) | (tos >> 4));
		b[1] = (__u8)((b[1] & 0x0f) | (tos << 4));
		bpf_skb_store_bytes(skb, l3, b, 2, 0);
	}
}

/* The egress interfaces' classifier (tc egress of each [qos] interface, ahead of the
 * agent's HTB root): the packet's persona from the mark a workload's veth put on it, or
 * else from the sending socket's cgroup (a local process); then its HTB class through
 * skb->priority and its DSCP. Packets of no persona with QoS pass untouched, unshaped. */
SEC("tc")
int pbpf_qos_egress(struct __sk_buff *skb)
{
	__u32 persona = (skb->mark & PBPF_MARK_PERSONA_MASK) >> PBPF_MARK_PERSONA_SHIFT;
	struct sk_buff *kskb;
	struct pbpf_qos *q;
	__u32 slot;

	if (persona == 0 && bpf_skb_cgroup_id(skb) != 0)
		persona = resolve_persona(skb, &slot);
	if (persona == 0)
		return TC_ACT_OK_;
	q = bpf_map_lookup_elem(&pbpf_qos, &persona);
	if (!q)
		return TC_ACT_OK_;
	if (q->flags & PBPF_QOS_F_EGRESS_CLASS)
		skb->priority = ((__u32)PBPF_QOS_HTB_MAJOR << 16) | q->class_minor;
	if (q->flags & PBPF_QOS_F_DSCP) {
		kskb = bpf_cast_to_kern_ctx(skb);
		set_dscp(skb, kskb->dev->hard_header_len, q->dscp);
	}
	return TC_ACT_OK_;
}

SEC("cgroup_skb/ingress")
int pbpf_cgroup_ingress(struct __sk_buff *skb)
{
	return cgroup_evaluate(skb, PBPF_DIR_INGRESS);
}

SEC("cgroup_skb/egress")
int pbpf_cgroup_egress(struct __sk_buff *skb)
{
	return cgroup_evaluate(skb, PBPF_DIR_EGRESS);
}

SEC("tc")
int pbpf_tc_ingress(struct __sk_buff *skb)
{
	return tc_evaluate(skb, PBPF_DIR_EGRESS);
}

SEC("tc")
int pbpf_tc_egress(struct __sk_buff *skb)
{
	return tc_evaluate(skb, PBPF_DIR_INGRESS);
}

/* TCP RTT per persona: the sock_ops program and its maps. */
#include "bpf/rtt.h"

/* Routing, next hops and hop limit per persona: three programs and their map. */
#include "bpf/topology.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
