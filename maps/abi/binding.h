/* Workload -> persona bindings and the cache of resolved (inherited) bindings. */
#pragma once

#include "maps/abi/types.h"

/* pbpf_bindings: key __u64 cgroup id (the cgroup's inode number). */
/* pbpf_binding.flags */
#define PBPF_BINDING_F_L3 0x1 /* interface without a link header (tun): IP at offset 0 */

/* counter_slot: the binding's row in pbpf_binding_counters, given by the agent; 0: not
 * counted per binding (fail-closed roots, or all slots taken). */
struct pbpf_binding {
	__u32 persona_id;
	__u32 flags; /* PBPF_BINDING_F_*; 0 for cgroups */
	__u32 counter_slot;
	__u32 pad0;
};

/* pbpf_resolve_cache: key __u64 cgroup id of the packet's socket. The entry is
 * valid only while epoch equals pbpf_globals.binding_epoch. persona_id 0 caches
 * "no bound ancestor". */
struct pbpf_resolved {
	__u32 persona_id;
	__u32 counter_slot; /* of the binding it resolved to */
	__u64 epoch;
};

/* pbpf_if_bindings: interface-bound workloads (tc programs on the interface). */
struct pbpf_if_key {
	__u64 netns_cookie; /* the interface's network namespace */
	__u32 ifindex;
	__u32 pad0;
};

/* pbpf_globals: single-entry array, key 0. schema_version stays at offset 8 in every
 * layout, so any agent can read it from any pinned version. */
struct pbpf_globals {
	__u64 binding_epoch;   /* bumped by the agent after every binding change */
	__u32 schema_version;  /* PBPF_MAP_SCHEMA_VERSION of the maps' creator */
	__u32 pad0;
	__u64 policy_epoch;    /* bumped after every persona flip or removal (conntrack) */
	__u32 event_rate;      /* flow events per second per CPU; 0: none */
	__u32 event_burst;     /* events per CPU above the rate */
};
