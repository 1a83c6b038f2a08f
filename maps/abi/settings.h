/* The settings of one persona version beyond its policy trie: encryption, IDS, QoS,
 * topology, sovereignty and DNS, one struct per persona version (kept in an array map
 * indexed by persona id). A section the persona does not set leaves its fields zero. */
#pragma once

#include "maps/abi/types.h"
#include "maps/abi/limits.h"
#include "maps/abi/policy.h"

/* pbpf_persona_settings.flags */
#define PBPF_SETTINGS_F_AUDIT               (1u << 0)  /* audit mode: report, never drop */
#define PBPF_SETTINGS_F_ENCRYPTION_REQUIRED (1u << 1)  /* min_tls; exceptions: ENC_* entries */
#define PBPF_SETTINGS_F_IDS_SYN_FLOOD       (1u << 2)  /* syn_flood is set */
#define PBPF_SETTINGS_F_IDS_PORT_SCAN       (1u << 3)  /* port_scan is set */
#define PBPF_SETTINGS_F_QOS_EGRESS          (1u << 4)  /* egress is set */
#define PBPF_SETTINGS_F_QOS_INGRESS         (1u << 5)  /* ingress is set */
#define PBPF_SETTINGS_F_ROUTE_TABLE         (1u << 6)  /* route_table is set */
#define PBPF_SETTINGS_F_ROUTE_VIA           (1u << 7)  /* route_via is set */
#define PBPF_SETTINGS_F_SOVEREIGNTY         (1u << 8)  /* countries is a list to enforce */
#define PBPF_SETTINGS_F_SOV_DENY_LIST       (1u << 9)  /* countries are denied, not allowed */
#define PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW   (1u << 10) /* no geo data: allowed (else: violation) */
#define PBPF_SETTINGS_F_SOV_LOG_ONLY        (1u << 11) /* violation: report, do not drop */

/* pbpf_persona_settings.min_tls: TLS versions as on the wire (ProtocolVersion). */
#define PBPF_TLS_1_0 0x0301
#define PBPF_TLS_1_1 0x0302
#define PBPF_TLS_1_2 0x0303
#define PBPF_TLS_1_3 0x0304

/* pbpf_persona_settings.priority: ascending, so a larger value wins under contention. */
enum pbpf_priority {
	PBPF_PRIORITY_UNSET = 0,
	PBPF_PRIORITY_LOW = 1,
	PBPF_PRIORITY_NORMAL = 2,
	PBPF_PRIORITY_HIGH = 3,
	PBPF_PRIORITY_CRITICAL = 4,
};

/* `COUNT/WINDOW [block DURATION]`: COUNT events from one source within window_ns
 * cross the threshold. */
struct pbpf_ids_threshold {
	__u64 count;     /* events: SYNs, or distinct destination ports */
	__u64 window_ns; /* nanoseconds */
	__u64 block_ns;  /* nanoseconds a crossing source is dropped; 0: report only */
};

/* Shaping of one direction. */
struct pbpf_shaping {
	__u64 rate_bps;    /* bits per second */
	__u64 burst_bytes; /* bytes; 0: not given, enforcement derives one from the rate */
};

/* A host address. */
struct pbpf_addr {
	__u8 family;   /* enum pbpf_family; 0: no address */
	__u8 pad0[3];
	__u8 addr[16]; /* network order; IPv4 in addr[0..3], the rest zero */
};

/* Unset sections leave their fields zero; a flag marks sections whose zero is a value. */
struct pbpf_persona_settings {
	__u32 flags;             /* PBPF_SETTINGS_F_* */
	__u16 min_tls;           /* PBPF_TLS_*, lowest accepted; 0 unless ENCRYPTION_REQUIRED */
	__u8 priority;           /* enum pbpf_priority; 0: unset (treat as normal) */
	__u8 max_hops;           /* TTL / hop limit clamp, in hops (1..255); 0: no clamp */
	__u8 next_hop_count;     /* used slots of next_hops; 0: any next hop */
	__u8 dns_count;          /* used slots of dns_servers; 0: DNS left alone */
	__u16 pad0;
	__u32 route_table;       /* routing table id, if ROUTE_TABLE */
	__u64 latency_target_ns; /* TCP RTT to watch, nanoseconds; 0: not watched */
	struct pbpf_shaping egress;          /* if QOS_EGRESS */
	struct pbpf_shaping ingress;         /* if QOS_INGRESS */
	struct pbpf_ids_threshold syn_flood; /* SYNs per source, if IDS_SYN_FLOOD */
	struct pbpf_ids_threshold port_scan; /* destination ports per source, if IDS_PORT_SCAN */
	struct pbpf_addr route_via;          /* gateway, if ROUTE_VIA */
	struct pbpf_addr next_hops[PBPF_MAX_NEXT_HOPS];     /* sorted; [0, next_hop_count) */
	struct pbpf_addr dns_servers[PBPF_MAX_DNS_SERVERS]; /* preferred first; [0, dns_count) */
	__u32 pad1;
	/* Country bitmap, if SOVEREIGNTY: the code of letters c0 c1 ('A'..'Z') is bit
	 * i = (c0 - 'A') * 26 + (c1 - 'A'), that is countries[i / 64] & (1ULL << (i % 64)). */
	__u64 countries[PBPF_COUNTRY_WORDS];
};
