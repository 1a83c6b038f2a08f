/* Geo data for sovereignty: which country a remote address is in.
 *
 * IPv4 is a DIR-24-8 table (as in DPDK's LPM): pbpf_geo4 (an array of maps of one slot)
 * points at an array of pbpf_geo4_block. Blocks 0..65535 are indexed by the address's top
 * 16 bits and their entries by the third byte: one entry per /24. A /24 that longer
 * prefixes split points at a block of its own (PBPF_GEO4_GROUP | g: block 65536 + g),
 * whose entries are indexed by the last byte. So a lookup reads at most two blocks,
 * instead of walking the ~27 scattered nodes an LPM trie of the full dataset needs.
 *
 * IPv6 is an LPM trie: pbpf_geo (an array of maps of one slot) points at it. Its key
 * starts with the family byte, so a trie made by an older agent (which held both
 * families) still answers for IPv4 while pbpf_geo4's slot is empty.
 *
 * A dataset is swapped for another with one write per family: `geo reload` fills a new
 * table and a new trie before it flips the slots, so every lookup sees one complete
 * dataset of its family. An empty slot means no dataset: every address of that family is
 * of unknown country. The agent also bumps the policy epoch after a swap, so tracked
 * flows are judged once more against the new data. */
#pragma once

#include "maps/abi/types.h"

/* Bits of the key before the address: the family byte. */
#define PBPF_GEO_FAMILY_BITS 8

/* Trie key: prefixlen = PBPF_GEO_FAMILY_BITS + CIDR length; family = enum pbpf_family;
 * addr in network order (IPv4 in addr[0..3]); bits past the prefix are zero. A lookup
 * uses the full length (8 + 32 or 8 + 128). */
struct pbpf_geo_key {
	__u32 prefixlen;
	__u8 family;
	__u8 addr[16];
	__u8 pad0[3];
};

/* Trie value: the country as the bit index of pbpf_persona_settings.countries
 * ((c0 - 'A') * 26 + (c1 - 'A')) and as its two letters, for events. */
struct pbpf_geo_value {
	__u16 country;
	__u8 code[2];
};

/* IPv4 table entry: 0 = no country; 1..676 = the country's bit index + 1 (as
 * pbpf_geo_value.country, letters derived from it); PBPF_GEO4_GROUP | g = see block
 * PBPF_GEO4_TOP_BLOCKS + g. */
#define PBPF_GEO4_GROUP 0x8000
#define PBPF_GEO4_TOP_BLOCKS 65536
#define PBPF_GEO4_MAX_GROUPS 32768

struct pbpf_geo4_block {
	__u16 entry[256];
};
