/* Connection tracking: one entry per flow of a workload, keyed from the workload's side,
 * so a packet in either direction finds its flow with one lookup (egress: local = source;
 * ingress: local = destination). The entry caches the verdict of the flow's first packet,
 * tagged with the persona and the policy epoch it was taken under; a packet that finds
 * either changed re-evaluates the flow against the persona's current rules. */
#pragma once

#include "maps/abi/types.h"
#include "maps/abi/policy.h"

/* Timeouts, seconds since the flow's last packet. A flow past its timeout is treated as
 * absent by the programs and hidden by the agent; the LRU map reclaims it. */
#define PBPF_CT_TCP_SYN_TIMEOUT 60        /* SYN seen, no answer yet (half-open) */
#define PBPF_CT_TCP_ESTABLISHED_TIMEOUT 21600
#define PBPF_CT_TCP_CLOSING_TIMEOUT 120   /* FIN from one side */
#define PBPF_CT_TCP_CLOSED_TIMEOUT 10     /* FIN from both sides, or RST */
#define PBPF_CT_UDP_TIMEOUT 30            /* no reply yet */
#define PBPF_CT_UDP_REPLIED_TIMEOUT 120
#define PBPF_CT_ICMP_TIMEOUT 30
#define PBPF_CT_OTHER_TIMEOUT 60

/* pbpf_ct_key.workload of interface-bound workloads carries the netns cookie; ifindex
 * is non-zero exactly for them. */
struct pbpf_ct_key {
	__u64 workload;     /* cgroup id of the socket, or the interface's netns cookie */
	__u32 ifindex;      /* 0: cgroup-bound */
	__u8 family;        /* enum pbpf_family */
	__u8 proto;         /* IP protocol number */
	__be16 local_port;  /* TCP/UDP port; ICMP echo: the identifier; else 0 */
	__be16 remote_port; /* TCP/UDP port; else 0 */
	__u16 pad0;
	__u32 pad1;
	__u8 local[16];     /* workload's address, network order; IPv4 in [0..3] */
	__u8 remote[16];    /* peer's address */
};

enum pbpf_ct_state {
	PBPF_CT_NEW = 1,         /* packets from the originator only (TCP: SYN sent) */
	PBPF_CT_ESTABLISHED = 2, /* packets seen both ways (TCP: also picked up mid-stream) */
	PBPF_CT_CLOSING = 3,     /* TCP: FIN from one side */
	PBPF_CT_CLOSED = 4,      /* TCP: FIN from both sides, or RST */
};

/* pbpf_ct_value.flags */
#define PBPF_CT_F_AUDIT       0x1 /* the rules deny the flow; it passes because of audit mode */
#define PBPF_CT_F_FIN_LOCAL   0x2 /* TCP FIN sent by the workload */
#define PBPF_CT_F_FIN_REMOTE  0x4 /* TCP FIN sent by the peer */
#define PBPF_CT_F_POLICED     0x8 /* the persona limits its ingress rate: police the flow's
                                   * inbound packets (set when the flow is decided) */

struct pbpf_ct_value {
	__u64 created_ns;    /* bpf_ktime_get_ns (CLOCK_MONOTONIC) of the first packet */
#ifdef PBPF_LAYOUT_TEST_NEXT
	/* Tests only: a "next release" with another layout (agent/CMakeLists.txt
	 * personabpfd_next): every member after this one moves, so a migration that copied
	 * bytes instead of members would garble the flows. */
	__u64 layout_test_next;
#endif
	__u64 last_seen_ns;  /* of the latest packet */
	__u64 policy_epoch;  /* pbpf_globals.policy_epoch the verdict was taken under */
	__u64 packets[PBPF_DIR_COUNT]; /* per direction of the workload (not atomic: close) */
	__u64 bytes[PBPF_DIR_COUNT];
	__u32 persona_id;    /* persona whose rules took the verdict */
	__u32 rule_id;       /* the rule that decided; 0: the direction's default */
	__u8 origin;         /* enum pbpf_direction of the first packet */
	__u8 state;          /* enum pbpf_ct_state */
	__u8 flags;          /* PBPF_CT_F_* */
	__u8 pad0;
	__u32 pad1;
};

/* Seconds a flow lives after its last packet, by IP protocol and state: the one
 * definition the programs and the agent (`conntrack ls`) both use. */
static inline __u64 pbpf_ct_timeout_s(__u8 proto, __u8 state)
{
	switch (proto) {
	case 6: /* TCP */
		switch (state) {
		case PBPF_CT_NEW:
			return PBPF_CT_TCP_SYN_TIMEOUT;
		case PBPF_CT_CLOSING:
			return PBPF_CT_TCP_CLOSING_TIMEOUT;
		case PBPF_CT_CLOSED:
			return PBPF_CT_TCP_CLOSED_TIMEOUT;
		default:
			return PBPF_CT_TCP_ESTABLISHED_TIMEOUT;
		}
	case 17: /* UDP */
		return state == PBPF_CT_NEW ? PBPF_CT_UDP_TIMEOUT : PBPF_CT_UDP_REPLIED_TIMEOUT;
	case 1:  /* ICMP */
	case 58: /* ICMPv6 */
		return PBPF_CT_ICMP_TIMEOUT;
	default:
		return PBPF_CT_OTHER_TIMEOUT;
	}
}

/* Fragments: the first fragment of a datagram carries the ports and is judged like any
 * packet; the later ones (no L4 header) follow its verdict through pbpf_fragments (LRU),
 * keyed by the datagram's identification. A later fragment without a recorded first one
 * is dropped (fail closed). cgroup_skb sees whole datagrams (egress before fragmentation,
 * ingress after reassembly); tc on an interface sees fragments. */
#define PBPF_FRAG_TIMEOUT 30 /* seconds, the kernel's reassembly timeout */

struct pbpf_frag_key {
	__u64 workload; /* as in pbpf_ct_key */
	__u32 ifindex;
	__u32 id;       /* IPv4 identification or IPv6 fragment identification */
	__u8 family;
	__u8 proto;
	__u16 pad0;
	__u32 pad1;
	__u8 saddr[16]; /* as on the wire */
	__u8 daddr[16];
};

struct pbpf_frag_value {
	__u64 created_ns;
	__u32 persona_id;
	__u8 flags;     /* PBPF_CT_F_AUDIT: counted as audited */
	__u8 pad0[3];
};
