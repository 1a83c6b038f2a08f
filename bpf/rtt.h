/* rtt.h: TCP round-trip time per binding (sock_ops), included at the end of persona.bpf.c
 * (it uses its binding maps, resolve cache and pbpf_qos). At the established callbacks a
 * socket of a persona with a latency target (pbpf_qos flag PBPF_QOS_F_RTT) gets the RTT
 * callback turned on and its persona and binding counter slot remembered in socket
 * storage; each RTT callback then adds the smoothed RTT to the per-CPU histogram of that
 * (persona, slot) (maps/abi/rtt.h). Sockets of other personas cost one callback at
 * establishment and nothing after. */
#pragma once

#include "maps/abi/rtt.h"

/* Linux socket families (not in vmlinux.h). */
#define AF_INET_  2
#define AF_INET6_ 10

/* (persona id, binding counter slot) -> its RTT histogram; only the bindings of personas
 * with a latency target have one (made and removed by the agent). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PBPF_RTT_ENTRIES);
	__type(key, struct pbpf_rtt_key);
	__type(value, struct pbpf_rtt_hist);
} pbpf_rtt SEC(".maps");

/* Sockets being sampled: their persona and binding slot, resolved at establishment and
 * again after a binding change. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pbpf_rtt_sock);
} pbpf_rtt_sock SEC(".maps");

static __always_inline __u64 binding_epoch(void)
{
	__u32 zero = 0;
	struct pbpf_globals *g = bpf_map_lookup_elem(&pbpf_globals, &zero);

	return g ? g->binding_epoch : 0;
}

/* The persona and binding counter slot of the socket's cgroup, into *out (zeroed when the
 * cgroup resolves to no persona): the same answer resolve_persona() gives for its
 * packets (nearest bound ancestor), from the cgroup the socket was created in. The
 * socket's cgroup comes from the kernel's sock through bpf_cast_to_kern_ctx (sock_ops has
 * no bpf_sk_cgroup_id); the resolve cache almost always holds it, because the SYN or
 * SYN-ACK the socket sent before it was established went through pbpf_cgroup_egress. A
 * miss walks the ancestors like resolve_persona() and fills the cache. */
static __noinline void rtt_sock_key(struct bpf_sock_ops *skops, __u64 epoch,
					struct pbpf_rtt_key *out)
{
	struct bpf_sock_ops_kern *k = bpf_cast_to_kern_ctx(skops);
	struct pbpf_resolved *cached;
	struct pbpf_resolved fresh;
	struct pbpf_binding *b;
	struct cgroup *cg;
	__u32 persona = 0;
	__u32 found_slot = 0;
	__u64 cgid;
	int level, i;

	out->persona_id = 0;
	out->counter_slot = 0;
	if (!k->sk)
		return;
	cg = k->sk->sk_cgrp_data.cgroup;
	if (!cg)
		return;
	cgid = cg->kn->id;
	b = bpf_map_lookup_elem(&pbpf_bindings, &cgid);
	if (b) {
		out->persona_id = b->persona_id;
		out->counter_slot = b->counter_slot;
		return;
	}
	cached = bpf_map_lookup_elem(&pbpf_resolve_cache, &cgid);
	if (cached && cached->epoch == epoch) {
		out->persona_id = cached->persona_id;
		out->counter_slot = cached->counter_slot;
		return;
	}

	level = cg->level;
	for (i = 0; i < PBPF_MAX_CGROUP_DEPTH; i++) {
		struct cgroup *anc = NULL;
		struct kernfs_node *kn = NULL;
		__u64 id = 0;
		int l = level - 1 - i;

		if (l < 0)
			break;
		if (bpf_probe_read_kernel(&anc, sizeof(anc), &cg->ancestors[l]) != 0 || !anc)
			break;
		if (bpf_probe_read_kernel(&kn, sizeof(kn), &anc->kn) != 0 || !kn)
			break;
		if (bpf_probe_read_kernel(&id, sizeof(id), &kn->id) != 0)
			break;
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
	out->persona_id = persona;
	out->counter_slot = found_slot;
}

static __always_inline int rtt_wanted(__u32 persona)
{
	struct pbpf_qos *q = bpf_map_lookup_elem(&pbpf_qos, &persona);

	return q && (q->flags & PBPF_QOS_F_RTT);
}

/* Bucket of a value in microseconds (maps/abi/rtt.h). */
static __always_inline __u32 rtt_bucket(__u64 us)
{
	__u32 msb = 0;
	__u64 v = us;
	__u32 g;

	if (us < PBPF_RTT_SUB)
		return (__u32)us;
	if (v >> 32) { v >>= 32; msb += 32; }
	if (v >> 16) { v >>= 16; msb += 16; }
	if (v >> 8) { v >>= 8; msb += 8; }
	if (v >> 4) { v >>= 4; msb += 4; }
	if (v >> 2) { v >>= 2; msb += 2; }
	if (v >> 1) { msb += 1; }
	g = msb - (PBPF_RTT_SUB_BITS - 1);
	if (g >= PBPF_RTT_GROUPS)
		return PBPF_RTT_BUCKETS - 1;
	return g * PBPF_RTT_SUB + (__u32)((us >> (msb - PBPF_RTT_SUB_BITS)) & (PBPF_RTT_SUB - 1));
}

static __always_inline void rtt_stop(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
}

static __always_inline void rtt_established(struct bpf_sock_ops *skops)
{
	struct pbpf_rtt_key key;
	struct pbpf_rtt_sock *s;
	struct bpf_sock *sk;
	__u64 epoch = binding_epoch();

	rtt_sock_key(skops, epoch, &key);
	if (key.persona_id == 0 || !rtt_wanted(key.persona_id))
		return;
	sk = skops->sk;
	if (!sk)
		return;
	s = bpf_sk_storage_get(&pbpf_rtt_sock, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return;
	s->persona_id = key.persona_id;
	s->counter_slot = key.counter_slot;
	s->epoch = epoch;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG);
}

static __always_inline void rtt_sample(struct bpf_sock_ops *skops)
{
	struct pbpf_rtt_hist *h;
	struct pbpf_rtt_sock *s;
	struct pbpf_rtt_key key;
	struct bpf_sock *sk = skops->sk;
	__u64 epoch, us;
	__u32 idx;

	if (!sk)
		return;
	s = bpf_sk_storage_get(&pbpf_rtt_sock, sk, NULL, 0);
	if (!s) {
		rtt_stop(skops);
		return;
	}
	/* A binding changed since: the socket's cgroup may belong to another persona or
	 * binding now. */
	epoch = binding_epoch();
	if (s->epoch != epoch) {
		rtt_sock_key(skops, epoch, &key);
		s->persona_id = key.persona_id;
		s->counter_slot = key.counter_slot;
		s->epoch = epoch;
	}
	key.persona_id = s->persona_id;
	key.counter_slot = s->counter_slot;
	h = bpf_map_lookup_elem(&pbpf_rtt, &key);
	if (!h) {
		/* No histogram: the persona lost its target (stop sampling this socket), or
		 * the agent has not made the binding's yet (skip this sample). */
		if (key.persona_id == 0 || !rtt_wanted(key.persona_id))
			rtt_stop(skops);
		return;
	}
	us = skops->srtt_us >> 3; /* srtt_us holds 8 x the smoothed RTT */
	idx = rtt_bucket(us);
	h->samples++;
	h->sum_us += us;
	if (idx < PBPF_RTT_BUCKETS)
		h->buckets[idx]++;
}

SEC("sockops")
int pbpf_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET_ && skops->family != AF_INET6_)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		rtt_established(skops);
		break;
	case BPF_SOCK_OPS_RTT_CB:
		rtt_sample(skops);
		break;
	}
	return 1;
}
