/* Per-persona packet and byte counters (per-CPU array indexed by persona id;
 * index 0 counts traffic of the managed subtree that has no persona). */
#pragma once

#include "maps/abi/types.h"
#include "maps/abi/policy.h"

struct pbpf_dir_counters {
	__u64 allowed_packets;
	__u64 allowed_bytes;
	__u64 denied_packets;  /* dropped */
	__u64 denied_bytes;
	__u64 audited_packets; /* would have been dropped; passed because of audit mode */
	__u64 audited_bytes;
};

struct pbpf_counters {
	struct pbpf_dir_counters dir[PBPF_DIR_COUNT];
};
