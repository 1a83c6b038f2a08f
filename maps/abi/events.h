/* Flow events: the kernel reports verdicts on a ring buffer (pbpf_events). Every denied
 * or audited packet and the first packet of every allowed flow produce one, within a
 * per-CPU token bucket (pbpf_globals.event_rate/event_burst) so a flood cannot starve the
 * agent; what the bucket or a full ring suppresses is counted in pbpf_event_state. */
#pragma once

#include "maps/abi/types.h"

enum pbpf_event_verdict {
	PBPF_EV_ALLOWED = 1, /* new flow allowed */
	PBPF_EV_DROPPED = 2,
	PBPF_EV_AUDIT = 3,   /* denied by the rules, passed because of audit mode */
	/* Made by the agent, never by the programs: a workload bound to a persona (or to
	 * another one), or unbound. reason is an enum pbpf_bind_trigger, rule_id the binding
	 * rule's id when a rule made the change. */
	PBPF_EV_BIND = 16,
	PBPF_EV_UNBIND = 17,
	/* Made by the agent: a persona's latency SLO changed status (agent/rtt.h); reason is
	 * the new status (1 no-data, 2 met, 3 violated), the figures travel beside it. */
	PBPF_EV_LATENCY = 18,
};

enum pbpf_bind_trigger {
	PBPF_BIND_API = 1,             /* personabpf bind / unbind */
	PBPF_BIND_RULE = 2,            /* a binding rule matched (or stopped matching) */
	PBPF_BIND_FAIL_CLOSED = 3,     /* a fail-closed subtree's root ([binding] fail_closed) */
	PBPF_BIND_GONE = 4,            /* the cgroup or interface disappeared */
	PBPF_BIND_PERSONA_REMOVED = 5, /* persona rm --force */
};

enum pbpf_event_reason {
	PBPF_REASON_RULE = 1,        /* rule_id names the rule */
	PBPF_REASON_DEFAULT = 2,     /* no rule matched: the direction's default */
	PBPF_REASON_RELATED = 3,     /* ICMP error about a tracked flow */
	PBPF_REASON_MALFORMED = 4,   /* truncated or inconsistent headers */
	PBPF_REASON_NO_POLICY = 5,   /* persona bound but its policy incomplete: fail closed */
	PBPF_REASON_REEVALUATED = 6, /* tracked flow judged again by the persona's new rules */
	PBPF_REASON_NOT_IP = 7,      /* interface-bound: neither IP nor ARP */
	PBPF_REASON_FRAGMENT = 8,    /* a later fragment whose first fragment did not pass */
	PBPF_REASON_FAIL_CLOSED = 9, /* workload in a fail-closed subtree, not bound yet */
	PBPF_REASON_RATE_LIMIT = 10, /* over the persona's ingress rate (counted, no event) */
	PBPF_REASON_SOVEREIGNTY = 11, /* the remote's country (or unknown) is not allowed */
	PBPF_REASON_NEXT_HOP = 12,   /* routed through a gateway the persona's next-hops exclude */
};
/* The highest enum pbpf_event_reason (readers iterate 1..PBPF_REASON_LAST). */
#define PBPF_REASON_LAST PBPF_REASON_NEXT_HOP

/* pbpf_flow_event.flags */
#define PBPF_EV_F_INTERFACE 0x1 /* workload is interface-bound (workload = netns cookie) */
#define PBPF_EV_F_AUDIT     0x2 /* persona in audit mode */

struct pbpf_flow_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns */
	__u64 workload;     /* cgroup id, or netns cookie with PBPF_EV_F_INTERFACE */
	__u32 ifindex;      /* interface-bound: the interface; else 0 */
	__u32 persona_id;
	__u32 rule_id;      /* PBPF_REASON_RULE: 1-based rule index */
	__u32 len;          /* packet length, bytes */
	__u8 verdict;       /* enum pbpf_event_verdict */
	__u8 reason;        /* enum pbpf_event_reason */
	__u8 dir;           /* enum pbpf_direction of the workload */
	__u8 family;        /* enum pbpf_family */
	__u8 proto;         /* IP protocol number */
	__u8 tcp_flags;     /* TCP: flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__be16 sport;       /* TCP/UDP ports as on the wire; ICMP: the type here, */
	__be16 dport;       /* the code here (network order too) */
	__u8 flags;         /* PBPF_EV_F_* */
	__u8 pad0;
	__u8 country[2];    /* PBPF_REASON_SOVEREIGNTY: the remote's country ("DE"); 0 0: unknown */
	__u16 pad1;
	__u8 saddr[16];     /* as on the wire; IPv4 in [0..3] */
	__u8 daddr[16];
};

/* pbpf_event_state: per-CPU array, key 0. */
struct pbpf_event_state {
	__u64 tokens;        /* events the bucket still allows */
	__u64 last_ns;       /* last refill */
	__u64 emitted;
	__u64 rate_limited;  /* suppressed by the bucket */
	__u64 ring_full;     /* lost because the ring had no room */
};
