/* QoS of a persona as the kernel programs need it: its HTB class on the agent's egress
 * interfaces, its DSCP, its ingress limit and whether its TCP RTT is sampled. One entry
 * per persona id in pbpf_qos (hash; no entry: the persona has no QoS). The agent writes
 * an entry whole (a hash update replaces it atomically) when a persona version with a
 * qos section is applied, and deletes it when the section or the persona goes. */
#pragma once

#include "maps/abi/types.h"
#include "maps/abi/limits.h"

#if !defined(__bpf__)
#include <linux/bpf.h> /* struct bpf_spin_lock */
#endif

/* pbpf_qos.flags */
#define PBPF_QOS_F_EGRESS_CLASS  (1u << 0) /* class_minor names the persona's HTB class */
#define PBPF_QOS_F_DSCP          (1u << 1) /* rewrite DSCP to dscp on the egress interfaces */
#define PBPF_QOS_F_INGRESS_LIMIT (1u << 2) /* police what the persona receives to ingress_* */
#define PBPF_QOS_F_RTT           (1u << 3) /* sample TCP RTT (the persona has a latency target) */

/* The HTB qdisc the agent installs as root of each [qos] egress interface: handle
 * PBPF_QOS_HTB_MAJOR: ("pb"), the link class :1, and one class per persona with
 * minor PBPF_QOS_CLASS_BASE + persona id. A program selects a class by writing
 * skb->priority = (PBPF_QOS_HTB_MAJOR << 16) | class_minor. */
#define PBPF_QOS_HTB_MAJOR  0x7062
#define PBPF_QOS_LINK_MINOR 0x1
#define PBPF_QOS_CLASS_BASE 0x1000

/* skb->mark bits that carry a workload's persona id from the host side of its veth (tc
 * ingress, where the workload is still recognisable) to the egress interface, where
 * forwarding has orphaned the packet. Other mark bits are left as they are. */
#define PBPF_MARK_PERSONA_SHIFT 20
#define PBPF_MARK_PERSONA_MASK  (0xfffu << PBPF_MARK_PERSONA_SHIFT)

/* DSCP written per priority (RFC 4594 classes): low CS1 (lower effort), normal CS0
 * (default), high AF41, critical EF. */
#define PBPF_DSCP_LOW      8
#define PBPF_DSCP_NORMAL   0
#define PBPF_DSCP_HIGH     34
#define PBPF_DSCP_CRITICAL 46

/* The ingress policer's bucket of one persona (pbpf_ingress_buckets, array by persona
 * id). Credit is kept in byte-nanoseconds per second (bytes * 1e9), so refilling needs
 * no division: credit += elapsed_ns * rate_bytes_per_s, capped at burst * 1e9. */
struct pbpf_ingress_bucket {
	struct bpf_spin_lock lock;
	__u32 pad0;
	__u64 credit;  /* bytes * 1e9 */
	__u64 last_ns; /* CLOCK_MONOTONIC (coarse) of the last refill */
};

/* Default bucket depth when the persona gives no burst: what the rate sends in this many
 * milliseconds (at least PBPF_INGRESS_MIN_BURST bytes). */
#define PBPF_INGRESS_BURST_MS 250
#define PBPF_INGRESS_MIN_BURST (1024 * 1024)

struct pbpf_qos {
	__u32 flags;                /* PBPF_QOS_F_* */
	__u16 class_minor;          /* if EGRESS_CLASS */
	__u8 dscp;                  /* 0..63, if DSCP */
	__u8 priority;              /* enum pbpf_priority (maps/abi/settings.h) */
	__u64 ingress_rate_bps;     /* bits per second, if INGRESS_LIMIT */
	__u64 ingress_burst_bytes;  /* bucket depth, bytes, if INGRESS_LIMIT */
	__u64 latency_target_ns;    /* if RTT */
};
