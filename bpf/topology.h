/* topology.h: a persona's `topology` section in the kernel (docs/topology.md), included at
 * the end of persona.bpf.c (it uses its binding maps, resolve cache, counters and events).
 * Three programs of their own, so that none of this weighs on the firewall programs'
 * stack:
 *  - pbpf_topo_sock_create (cgroup/sock_create on the managed root): a socket created by
 *    a workload whose persona has a topology section carries the persona mark from its
 *    first route lookup on, so the agent's fwmark rules route it;
 *  - pbpf_topo_ingress (TCX ingress of a bound interface, ahead of pbpf_tc_ingress): the
 *    same mark on what an interface-bound workload sends, before the host routes it, and
 *    its TTL / hop limit clamped;
 *  - pbpf_topo_egress (TCX egress of the [topology] egress interfaces, ahead of the QoS
 *    classifier): the TTL clamp of local workloads, and the next-hop check of both kinds,
 *    against the route the kernel attached to the packet.
 * All three return TCX_NEXT (or 1) when they pass, so the programs behind them run. */
#pragma once

#include "maps/abi/topology.h"

#define TCX_NEXT_ -1
#define AF_INET_T 2
#define AF_INET6_T 10
#define RTF_GATEWAY_ 0x0002

/* persona id -> its topology; no entry: the persona has none. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBPF_MAX_PERSONAS);
	__type(key, __u32);
	__type(value, struct pbpf_topology);
} pbpf_topology SEC(".maps");

/* The agent's own netns (set before load): a socket created elsewhere (a cgroup-bound
 * container in a netns of its own) is routed by that netns, where the agent has no rules,
 * and its mark is reset when its packets cross into the host; it is left alone. */
const volatile __u64 pbpf_host_netns_cookie = 0;

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* Nearest bound ancestor of the current task's cgroup (the cgroup a new socket belongs
 * to), as resolve_persona() finds it for a packet; cached alike. */
static __always_inline __u32 current_persona(void)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct pbpf_resolved *cached;
	struct pbpf_resolved fresh;
	struct pbpf_binding *b;
	struct pbpf_globals *g;
	__u32 zero = 0, persona = 0, found_slot = 0;
	__u64 epoch = 0;
	int depth = PBPF_MAX_CGROUP_DEPTH;
	int i;

	b = bpf_map_lookup_elem(&pbpf_bindings, &cgid);
	if (b)
		return b->persona_id;
	g = bpf_map_lookup_elem(&pbpf_globals, &zero);
	if (g) epoch = g->binding_epoch;
	cached = bpf_map_lookup_elem(&pbpf_resolve_cache, &cgid);
	if (cached && cached->epoch == epoch)
		return cached->persona_id;
	for (i = 0; i < PBPF_MAX_CGROUP_DEPTH; i++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(i);

		if (id == 0 || id == cgid) {
			depth = i;
			break;
		}
	}
	for (i = 0; i < PBPF_MAX_CGROUP_DEPTH; i++) {
		int level = depth - 1 - i;
		__u64 id;

		if (level < 0) break;
		id = bpf_get_current_ancestor_cgroup_id(level);
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
	return persona;
}

static __always_inline __u32 persona_mark(__u32 mark, __u32 persona)
{
	return (mark & ~PBPF_MARK_PERSONA_MASK) |
		   ((persona << PBPF_MARK_PERSONA_SHIFT) & PBPF_MARK_PERSONA_MASK);
}

/* TTL / hop limit of the IP packet at l3 down to max (IPv4 with its header checksum
 * fixed; IPv6 has none). Packets already below pass unchanged, and so does IPv6
 * neighbour discovery. */
static __noinline void clamp_hops(struct __sk_buff *skb, __u32 l3, __u32 max)
{
	__u16 proto = bpf_ntohs(skb->protocol);

	if (proto == ETH_P_IP) {
		__be16 old_word, new_word;

		/* TTL and protocol share the header's fifth 16-bit word. */
		if (bpf_skb_load_bytes(skb, l3 + 8, &old_word, 2) != 0)
			return;
		if (((__u8 *)&old_word)[0] <= max)
			return;
		new_word = old_word;
		((__u8 *)&new_word)[0] = (__u8)max;
		if (bpf_l3_csum_replace(skb, l3 + 10, old_word, new_word, 2) != 0)
			return;
		bpf_skb_store_bytes(skb, l3 + 8, &new_word, 2, 0);
	} else if (proto == ETH_P_IPV6) {
		__u8 hdr[8], type;

		/* next header at 6, hop limit at 7 */
		if (bpf_skb_load_bytes(skb, l3, hdr, 8) != 0 || hdr[7] <= max)
			return;
		/* Neighbour discovery must arrive with hop limit 255 or it is ignored; it never
		 * leaves the link anyway. */
		if (hdr[6] == IPPROTO_ICMPV6_ && bpf_skb_load_bytes(skb, l3 + 40, &type, 1) == 0 &&
			type >= 133 && type <= 137)
			return;
		hdr[7] = (__u8)max;
		bpf_skb_store_bytes(skb, l3 + 7, &hdr[7], 1, 0);
	}
}

/* Whether the gateway the kernel routed this packet to is one of the persona's next
 * hops. The route is the one attached to the packet (its dst): what the routing decided,
 * read in a few loads, so the check needs no lookup and no cache, and follows route
 * changes at once. A packet without a route, or to an on-link destination (no gateway),
 * passes: it leaves through no next hop. */
static __noinline int next_hop_allowed(struct __sk_buff *skb, const struct pbpf_topology *t)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	__u16 proto = bpf_ntohs(skb->protocol);
	unsigned long dst = kskb->_skb_refdst & ~1UL; /* SKB_DST_NOREF */
	__u32 gw[4] = {0, 0, 0, 0};
	__u8 family = 0;
	int i;

	if (!dst)
		return 1;
	if (proto == ETH_P_IP) {
		struct rtable *rt = bpf_rdonly_cast((void *)dst, bpf_core_type_id_kernel(struct rtable));

		if (rt->rt_gw_family == AF_INET_T) {
			family = PBPF_FAMILY_IPV4;
			gw[0] = rt->rt_gw4;
		} else if (rt->rt_gw_family == AF_INET6_T) {
			family = PBPF_FAMILY_IPV6;
			gw[0] = rt->rt_gw6.in6_u.u6_addr32[0];
			gw[1] = rt->rt_gw6.in6_u.u6_addr32[1];
			gw[2] = rt->rt_gw6.in6_u.u6_addr32[2];
			gw[3] = rt->rt_gw6.in6_u.u6_addr32[3];
		} else {
			return 1;
		}
	} else if (proto == ETH_P_IPV6) {
		struct rt6_info *rt = bpf_rdonly_cast((void *)dst, bpf_core_type_id_kernel(struct rt6_info));

		if (!(rt->rt6i_flags & RTF_GATEWAY_))
			return 1;
		family = PBPF_FAMILY_IPV6;
		gw[0] = rt->rt6i_gateway.in6_u.u6_addr32[0];
		gw[1] = rt->rt6i_gateway.in6_u.u6_addr32[1];
		gw[2] = rt->rt6i_gateway.in6_u.u6_addr32[2];
		gw[3] = rt->rt6i_gateway.in6_u.u6_addr32[3];
	} else {
		return 1;
	}
	for (i = 0; i < PBPF_MAX_NEXT_HOPS; i++) {
		const __u32 *a = (const __u32 *)t->next_hops[i].addr;

		if (i >= t->next_hop_count) break;
		if (t->next_hops[i].family == family && a[0] == gw[0] && a[1] == gw[1] && a[2] == gw[2] &&
			a[3] == gw[3])
			return 1;
	}
	return 0;
}

/* A packet that leaves through a gateway the persona does not allow: counted under the
 * drop reason next-hop and reported (the workload is the sending socket's cgroup, or 0
 * for a forwarded packet, whose workload is known only by the persona mark). */
static __noinline void next_hop_drop(struct __sk_buff *skb, __u32 persona, __u32 l3)
{
	struct workload w;
	struct pkt p;

	__builtin_memset(&w, 0, sizeof(w));
	__builtin_memset(&p, 0, sizeof(p));
	w.persona = persona;
	w.l3 = l3;
	w.now = bpf_ktime_get_coarse_ns();
	w.id = bpf_skb_cgroup_id(skb);
	if (w.id != 0 && resolve_persona(skb, &w.slot) != persona) w.slot = 0;
	count_drop(&w, PBPF_DIR_EGRESS, PBPF_REASON_NEXT_HOP, skb->len);
	if (parse(skb, l3, &p) == PARSE_OK)
		emit(&w, &p, PBPF_DIR_EGRESS, PBPF_EV_DROPPED, PBPF_REASON_NEXT_HOP, 0, skb->len, 0);
}

SEC("cgroup/sock_create")
int pbpf_topo_sock_create(struct bpf_sock *sk)
{
	__u32 persona;

	if (sk->family != AF_INET_T && sk->family != AF_INET6_T)
		return 1;
	if (pbpf_host_netns_cookie != 0 && bpf_get_netns_cookie(sk) != pbpf_host_netns_cookie)
		return 1;
	persona = current_persona();
	if (persona == 0 || !bpf_map_lookup_elem(&pbpf_topology, &persona))
		return 1;
	sk->mark = persona_mark(0, persona);
	return 1;
}

SEC("tc")
int pbpf_topo_ingress(struct __sk_buff *skb)
{
	struct pbpf_topology *t;
	struct pbpf_binding *b;
	struct pbpf_if_key ik;
	__u32 persona;

	__builtin_memset(&ik, 0, sizeof(ik));
	ik.netns_cookie = interface_netns_cookie(skb);
	ik.ifindex = skb->ifindex;
	b = bpf_map_lookup_elem(&pbpf_if_bindings, &ik);
	if (!b || b->persona_id == 0)
		return TCX_NEXT_;
	persona = b->persona_id;
	t = bpf_map_lookup_elem(&pbpf_topology, &persona);
	if (!t)
		return TCX_NEXT_;
	skb->mark = persona_mark(skb->mark, persona);
	/* The packet leaves the workload here: the host's forwarding is its first hop. */
	if (t->flags & PBPF_TOPO_F_MAX_HOPS)
		clamp_hops(skb, (b->flags & PBPF_BINDING_F_L3) ? 0 : ETH_HLEN_, t->max_hops);
	return TCX_NEXT_;
}

SEC("tc")
int pbpf_topo_egress(struct __sk_buff *skb)
{
	__u32 persona = (skb->mark & PBPF_MARK_PERSONA_MASK) >> PBPF_MARK_PERSONA_SHIFT;
	struct pbpf_topology *t;
	struct sk_buff *kskb;
	__u32 slot, l3;

	if (persona == 0 && bpf_skb_cgroup_id(skb) != 0) persona = resolve_persona(skb, &slot);
	if (persona == 0)
		return TCX_NEXT_;
	t = bpf_map_lookup_elem(&pbpf_topology, &persona);
	if (!t)
		return TCX_NEXT_;
	kskb = bpf_cast_to_kern_ctx(skb);
	l3 = kskb->dev->hard_header_len;
	if (l3 > 64)
		return TCX_NEXT_;
	/* Forwarded packets were clamped at their interface (and decremented since): a no-op
	 * for them; local ones leave the workload here. */
	if (t->flags & PBPF_TOPO_F_MAX_HOPS) clamp_hops(skb, l3, t->max_hops);
	if ((t->flags & PBPF_TOPO_F_NEXT_HOPS) && !next_hop_allowed(skb, t)) {
		next_hop_drop(skb, persona, l3);
		return TC_ACT_SHOT_;
	}
	return TCX_NEXT_;
}
