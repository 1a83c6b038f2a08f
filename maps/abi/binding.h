/* Workload -> persona bindings and the cache of resolved (inherited) bindings. */
#pragma once

#include "maps/abi/types.h"

/* pbpf_bindings: key __u64 cgroup id (the cgroup's inode number). */
struct pbpf_binding {
	__u32 persona_id;
	__u32 flags; /* reserved, 0 */
};

/* pbpf_resolve_cache: key __u64 cgroup id of the packet's socket. The entry is
 * valid only while epoch equals pbpf_globals.binding_epoch. persona_id 0 caches
 * "no bound ancestor". */
struct pbpf_resolved {
	__u32 persona_id;
	__u32 pad0;
	__u64 epoch;
};

/* pbpf_globals: single-entry array, key 0. */
struct pbpf_globals {
	__u64 binding_epoch;   /* bumped by the agent after every binding change */
	__u32 schema_version;  /* PBPF_MAP_SCHEMA_VERSION of the maps' creator */
	__u32 pad0;
};
