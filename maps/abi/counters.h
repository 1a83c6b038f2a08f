/* Per-persona packet and byte counters (per-CPU array indexed by persona id;
 * index 0 counts traffic of the managed subtree that has no persona), and per-binding ones
 * (per-CPU array indexed by the binding's counter slot). */
#pragma once

#include "maps/abi/types.h"
#include "maps/abi/policy.h"

/* Room for enum pbpf_event_reason (1..12 today) and a few more. */
#define PBPF_DROP_REASON_SLOTS 16

struct pbpf_dir_counters {
	__u64 allowed_packets;
	__u64 allowed_bytes;
	__u64 denied_packets;  /* dropped */
	__u64 denied_bytes;
	__u64 audited_packets; /* would have been dropped; passed because of audit mode */
	__u64 audited_bytes;
	/* Dropped packets by enum pbpf_event_reason, indexed by the reason itself (slot 0:
	 * a reason beyond the array). Their sum is denied_packets. Packets only: bytes by
	 * reason would double the per-CPU size of every persona's row for little use. */
	__u64 dropped_by_reason[PBPF_DROP_REASON_SLOTS];
};

struct pbpf_counters {
	struct pbpf_dir_counters dir[PBPF_DIR_COUNT];
};

/* pbpf_binding_counters: what one binding's workloads (every cgroup that resolves to a
 * cgroup binding, or the bound interface) sent and received. passed counts allowed and
 * audited packets. */
struct pbpf_binding_dir_counters {
	__u64 passed_packets;
	__u64 passed_bytes;
	__u64 dropped_packets;
	__u64 dropped_bytes;
};

struct pbpf_binding_counters {
	struct pbpf_binding_dir_counters dir[PBPF_DIR_COUNT];
};

/* pbpf_binding_drops: one binding's dropped packets by direction and reason (per-CPU
 * hash, not preallocated: only the (slot, direction, reason) triples that occur take
 * memory; a full array of reasons for every slot would cost 256 bytes x slots x CPUs).
 * Written only on the drop path. The agent deletes a slot's keys before the slot's next
 * owner gets it. A drop whose key cannot be inserted (the map is full) is still counted
 * in pbpf_binding_counters; the agent reports the difference as reason "other". */
struct pbpf_binding_drop_key {
	__u32 slot;   /* pbpf_binding.counter_slot */
	__u8 dir;     /* enum pbpf_direction */
	__u8 reason;  /* enum pbpf_event_reason */
	__u8 pad[2];  /* zero */
};
