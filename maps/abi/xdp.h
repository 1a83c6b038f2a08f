/* XDP prefilter on uplinks: the host-wide deny trie of source prefixes, the
 * interface -> counter-slot map and the per-CPU counters (bpf/xdp_prefilter.bpf.c,
 * agent/xdp_prefilter.cpp). */
#pragma once

#include "maps/abi/types.h"

/* Counter slots: 0 counts packets on an interface the agent has not registered
 * (yet); interfaces get 1..PBPF_XDP_MAX_IFACES-1. */
#define PBPF_XDP_MAX_IFACES 64
/* Upper bound of [xdp] max_entries; the trie is not preallocated. */
#define PBPF_XDP_MAX_DENY_ENTRIES 1048576

/* pbpf_xdp_key.family, as AF_INET / AF_INET6 (not available to BPF C). */
#define PBPF_XDP_FAMILY_IPV4 2
#define PBPF_XDP_FAMILY_IPV6 10

/* Bits of pbpf_xdp_key before the address: family and padding. A /N prefix of
 * either family is stored with prefixlen PBPF_XDP_KEY_HEAD_BITS + N, so one trie
 * holds both families and an IPv4 prefix never matches an IPv6 address. */
#define PBPF_XDP_KEY_HEAD_BITS 32

/* pbpf_xdp_deny (LPM trie). IPv4 addresses fill addr[0..3], the rest is zero. */
struct pbpf_xdp_key {
	__u32 prefixlen;  /* PBPF_XDP_KEY_HEAD_BITS + prefix length */
	__u8 family;      /* PBPF_XDP_FAMILY_* */
	__u8 pad0[3];     /* zero */
	__u8 addr[16];    /* network byte order */
};

/* pbpf_xdp_deny.origin: who asked for the entry. */
#define PBPF_XDP_ORIGIN_CONFIG 1 /* [xdp] deny of the agent config, rewritten at start */
#define PBPF_XDP_ORIGIN_API 2    /* POST /v1/xdp/deny; kept until DELETE or --uninstall */

struct pbpf_xdp_deny_value {
	__u32 origin;  /* PBPF_XDP_ORIGIN_* */
	__u32 pad0;    /* zero */
};

/* pbpf_xdp_ifaces (hash): key __u32 ifindex. */
struct pbpf_xdp_iface {
	__u32 slot;   /* index into pbpf_xdp_counters, 1..PBPF_XDP_MAX_IFACES-1 */
	__u32 flags;  /* reserved, 0 */
};

/* pbpf_xdp_counters (per-CPU array indexed by slot). */
struct pbpf_xdp_counters {
	__u64 passed_packets;
	__u64 passed_bytes;
	__u64 dropped_packets;
	__u64 dropped_bytes;
};
