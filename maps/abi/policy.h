/* The policy of one persona version: one hash map holding an address table (peer
 * address -> address class) and a port table (class, protocol, port -> verdict), both
 * prefix tables, searched longest prefix first by tuple-space search: one exact lookup
 * per prefix length the table uses, with the lengths listed in LENGTHS entries of the
 * same map. See docs/architecture.md "Policy lookup" for how rules are lowered into it
 * and why a hash per prefix length instead of an LPM trie. */
#pragma once

#include "maps/abi/types.h"

enum pbpf_direction {
	PBPF_DIR_INGRESS = 0,
	PBPF_DIR_EGRESS = 1,
	PBPF_DIR_COUNT = 2,
};

enum pbpf_family {
	PBPF_FAMILY_IPV4 = 4,
	PBPF_FAMILY_IPV6 = 6,
};

/* Protocol buckets of the port table: IP protocol numbers for the four protocols
 * PDL names, PBPF_PROTO_OTHER for every other protocol. */
enum pbpf_proto {
	PBPF_PROTO_OTHER = 0,
	PBPF_PROTO_ICMP = 1,
	PBPF_PROTO_TCP = 6,
	PBPF_PROTO_UDP = 17,
	PBPF_PROTO_ICMPV6 = 58,
};

enum pbpf_verdict {
	PBPF_VERDICT_ALLOW = 1,
	PBPF_VERDICT_DENY = 2,
};

/* One trie holds several tables. Every entry's prefix covers the kind byte (the first
 * byte after prefixlen), so a lookup of one kind never matches an entry of another. */
enum pbpf_entry_kind {
	PBPF_ENTRY_ADDR = 1, /* security rules: peer prefix -> address class */
	PBPF_ENTRY_PORT = 2, /* security rules: class, proto, port -> verdict */
	PBPF_ENTRY_ENC_ADDR = 3, /* encryption exceptions: laid out as ADDR */
	PBPF_ENTRY_ENC_PORT = 4, /* encryption exceptions: laid out as PORT */
	PBPF_ENTRY_SOV_EXEMPT = 5, /* sovereignty: destinations exempt from the country check */
	PBPF_ENTRY_LENGTHS = 6, /* the prefix lengths an address table uses (see below) */
	PBPF_ENTRY_SOV_COUNTRY = 7, /* sovereignty: a country of the persona's list */
};

/* pbpf_policy_value.flags */
#define PBPF_POLICY_F_AUDIT 0x1 /* persona in audit mode: count a deny, never drop */
/* Sovereignty, on every PORT entry of a persona with a country list (the agent sets them
 * when it writes the map, from the settings; images carry 0): a flow the rules allow is
 * then checked against the country of its remote address. */
#define PBPF_POLICY_F_SOVEREIGNTY     0x2  /* check the remote's country */
#define PBPF_POLICY_F_SOV_DENY_LIST   0x4  /* SOV_COUNTRY entries are denied, not allowed */
#define PBPF_POLICY_F_SOV_UNKNOWN_OK  0x8  /* no geo data for the remote: allowed */
#define PBPF_POLICY_F_SOV_LOG_ONLY    0x10 /* a violation is reported, not dropped */

/* Bits of the key before pbpf_policy_key.data: kind, dir_or_zero, family_or_proto, table. */
#define PBPF_POLICY_HEADER_BITS 32
/* Bits of a port entry's data before the port: the class id. */
#define PBPF_POLICY_CLASS_BITS 32
/* A LENGTHS entry lists this many prefix lengths; a table using more has several
 * (chunk 0, 1, ...); IPv6's 129 possible lengths need at most PBPF_POLICY_LENGTH_CHUNKS. */
#define PBPF_POLICY_LENGTHS_PER_ENTRY 12
#define PBPF_POLICY_LENGTH_CHUNKS 11
/* Ends a LENGTHS entry's list early. */
#define PBPF_POLICY_LENGTHS_END 0xff

/* Map key. prefixlen counts the bits from `kind` on that the entry matches; every data
 * bit past them is zero (an entry is found by an exact lookup of a key masked to its
 * length, so an unmasked entry could never be found).
 *  ADDR: kind=ADDR, dir=direction, family_or_proto=family, data = peer address
 *        (IPv4 in data[0..3]), prefixlen = 32 + CIDR length.
 *  PORT: kind=PORT, dir=0, family_or_proto=proto bucket, data[0..3] = class id
 *        (big-endian), data[4..5] = destination port (big-endian),
 *        prefixlen = 32 + 32 + port prefix length (0..16).
 *  ENC_ADDR, ENC_PORT: exactly ADDR and PORT, for the persona's encryption
 *        exceptions lowered as a policy of their own (each exception an allow rule,
 *        default deny). Looked up like ADDR then PORT: verdict ALLOW means the flow is
 *        exempt from the encryption requirement, DENY that it must be encrypted. Present
 *        only when the persona requires encryption and lists exceptions; a miss means
 *        "not exempt". Class ids do not collide with those of ADDR/PORT.
 *  SOV_EXEMPT: kind=SOV_EXEMPT, dir=0, family_or_proto=family, data = destination
 *        address, prefixlen = 32 + CIDR length; value verdict ALLOW. A hit exempts the
 *        destination from the sovereignty country check; present only when the persona
 *        sets a country list.
 *  SOV_COUNTRY: kind=SOV_COUNTRY, dir=0, family_or_proto=0, data[0..1] = the country's
 *        bit index (pbpf_persona_settings.countries, big-endian), prefixlen = 32 + 16;
 *        value verdict ALLOW. One per country of the persona's list, written by the agent
 *        from the settings with the map (lowering never emits one); found by one exact
 *        lookup.
 *  LENGTHS: prefixlen=0, kind=LENGTHS, dir and family_or_proto those of the address
 *        table described (ADDR, ENC_ADDR: direction and family; SOV_EXEMPT: 0 and
 *        family), table = that table's kind, data[0] = chunk (0, 1, ...). Its value is a
 *        struct pbpf_policy_lengths: the CIDR lengths the table's entries use, longest
 *        first, chunk c holding the (12c+1)th to (12c+12)th. Written by the agent with
 *        the table (maps/policy_map.cpp); lowering never emits one. The port tables need
 *        none: an ADDR entry's value lists its class's port prefix lengths. */
struct pbpf_policy_key {
	__u32 prefixlen;
	__u8 kind;
	__u8 dir;
	__u8 family_or_proto;
	__u8 table; /* LENGTHS: the kind of the table described; 0 in every other entry */
	__u8 data[16];
};

/* ADDR (ENC_ADDR) entries use class_id and port_lengths; PORT (ENC_PORT) entries use
 * rule_id, verdict and flags (for ENC_PORT, rule_id is the 1-based index of the deciding
 * exception); SOV_EXEMPT entries use verdict. */
struct pbpf_policy_value {
	__u32 class_id;
	__u32 rule_id; /* 0: the direction's default; else the rule's 1-based index */
	__u8 verdict;  /* enum pbpf_verdict */
	__u8 flags;    /* PBPF_POLICY_F_* */
	/* ADDR, ENC_ADDR: bit L-1 set when the class has a PORT (ENC_PORT) entry of port
	 * prefix length L, 1..16, in any bucket. Every (class, bucket) has a length-0
	 * catch-all, so length 0 has no bit. Set by the agent when it writes the map; images
	 * carry 0. */
	__u16 port_lengths;
};

/* The value of a LENGTHS entry: prefix lengths (CIDR lengths, 0..128), longest first,
 * PBPF_POLICY_LENGTHS_END after the last when fewer than PBPF_POLICY_LENGTHS_PER_ENTRY. */
struct pbpf_policy_lengths {
	__u8 len[PBPF_POLICY_LENGTHS_PER_ENTRY];
};
