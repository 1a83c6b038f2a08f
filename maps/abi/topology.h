/* Topology of a persona as the kernel programs need it: whether its workloads carry the
 * persona mark (policy routing by fwmark: `route table` / `route via`), its hop limit and
 * the gateways it may leave through. One entry per persona id in pbpf_topology (hash; no
 * entry: the persona has no topology section). Written whole by the agent's
 * TopologyManager; see docs/topology.md. */
#pragma once

#include "maps/abi/limits.h"
#include "maps/abi/settings.h"
#include "maps/abi/types.h"

/* pbpf_topology.flags */
#define PBPF_TOPO_F_ROUTE (1u << 0)     /* route table/via: rules match the persona mark */
#define PBPF_TOPO_F_MAX_HOPS (1u << 1)  /* clamp TTL / hop limit to max_hops */
#define PBPF_TOPO_F_NEXT_HOPS (1u << 2) /* drop what leaves through another gateway */

struct pbpf_topology {
	__u32 flags;         /* PBPF_TOPO_F_* */
	__u8 max_hops;       /* 1..255, if MAX_HOPS */
	__u8 next_hop_count; /* used slots of next_hops, if NEXT_HOPS */
	__u16 pad0;
	struct pbpf_addr next_hops[PBPF_MAX_NEXT_HOPS]; /* [0, next_hop_count) */
};
