/* TCP round-trip times per persona. The sock_ops program (pbpf_sockops) samples the
 * smoothed RTT of every TCP socket of a persona with a latency target (pbpf_qos flag
 * PBPF_QOS_F_RTT) at each of the kernel's RTT updates, and adds it to the persona's
 * histogram in pbpf_rtt. The agent creates (zeroed) and deletes the histograms: only
 * personas with a target have one, and a missing histogram means "do not sample". */
#pragma once

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

/* pbpf_rtt: per-CPU hash (no prealloc), key __u32 persona id. Counters only grow; the
 * 32-bit buckets wrap, so readers take per-interval differences modulo 2^32 (a bucket
 * would need 4 billion samples on one CPU between two reads to be misread). */
struct pbpf_rtt_hist {
	__u64 samples;                     /* RTT updates counted */
	__u64 sum_us;                      /* their sum, microseconds */
	__u32 buckets[PBPF_RTT_BUCKETS];   /* samples per bucket */
};

/* pbpf_rtt_sock: socket storage of sockets being sampled: the persona the socket's
 * cgroup resolved to, valid while epoch equals pbpf_globals.binding_epoch. */
struct pbpf_rtt_sock {
	__u32 persona_id;
	__u32 pad0;
	__u64 epoch;
};
