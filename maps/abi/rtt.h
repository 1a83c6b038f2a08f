/* TCP round-trip times per binding. The sock_ops program (pbpf_sockops) samples the
 * smoothed RTT of every TCP socket of a persona with a latency target (pbpf_qos flag
 * PBPF_QOS_F_RTT) at each of the kernel's RTT updates, and adds it to the histogram in
 * pbpf_rtt of the (persona, binding counter slot) its cgroup resolves to. The agent
 * creates (zeroed) and deletes the histograms: only the bindings of personas with a
 * target have one, and a missing histogram means "do not sample". A persona's figures are
 * the sum of its bindings' histograms. */
#pragma once

#include "maps/abi/limits.h"
#include "maps/abi/types.h"

/* Log-linear buckets over microseconds. Below 2^PBPF_RTT_SUB_BITS (8 us) every
 * microsecond has a bucket; above, each power of two [2^k, 2^(k+1)) is cut into
 * PBPF_RTT_SUB equal buckets, so a bucket is at most 1/8 (12.5%) of its lower bound wide.
 * Bucket i, with g = i / PBPF_RTT_SUB and s = i % PBPF_RTT_SUB:
 *   g == 0: [s, s + 1) us
 *   g >= 1: [(PBPF_RTT_SUB + s) << (g - 1), (PBPF_RTT_SUB + s + 1) << (g - 1)) us
 * Group g >= 1 covers [2^(g+2), 2^(g+3)) us; the last group ends at 2^26 us (67 s), and
 * the last bucket also takes every larger value. */
#define PBPF_RTT_SUB_BITS 3
#define PBPF_RTT_SUB      (1u << PBPF_RTT_SUB_BITS)
#define PBPF_RTT_GROUPS   24
#define PBPF_RTT_BUCKETS  (PBPF_RTT_GROUPS * PBPF_RTT_SUB) /* 192 */

/* pbpf_rtt key: the persona and the counter slot (pbpf_binding.counter_slot) of the binding
 * the socket's cgroup resolved through. Slot 0 is a valid key: it collects the sockets of
 * the persona's bindings without a slot (the slot table was full), so that the persona's
 * sum misses nothing. */
struct pbpf_rtt_key {
	__u32 persona_id;
	__u32 counter_slot;
};

/* At most one histogram per slot (a slot belongs to one binding, of one persona) plus the
 * slot-0 one of each persona. */
#define PBPF_RTT_ENTRIES (PBPF_MAX_BINDING_SLOTS + PBPF_MAX_PERSONAS)

/* pbpf_rtt: per-CPU hash (no prealloc), key struct pbpf_rtt_key. Counters only grow; the
 * 32-bit buckets wrap, so readers take per-interval differences modulo 2^32 (a bucket
 * would need 4 billion samples on one CPU between two reads to be misread). */
struct pbpf_rtt_hist {
	__u64 samples;                     /* RTT updates counted */
	__u64 sum_us;                      /* their sum, microseconds */
	__u32 buckets[PBPF_RTT_BUCKETS];   /* samples per bucket */
};

/* pbpf_rtt_sock: socket storage of sockets being sampled: the persona and binding counter
 * slot the socket's cgroup resolved to (its pbpf_rtt key), valid while epoch equals
 * pbpf_globals.binding_epoch. */
struct pbpf_rtt_sock {
	__u32 persona_id;
	__u32 counter_slot;
	__u64 epoch;
};
