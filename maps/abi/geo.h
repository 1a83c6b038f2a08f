/* Geo data for sovereignty: which country a remote address is in. One LPM trie holds
 * both families (the family is the first key byte), so a dataset is swapped for another
 * with one write: pbpf_geo (an array of maps of one slot) points at the trie in force,
 * and `geo reload` fills a new trie before it flips the slot. An empty slot means no
 * dataset: every address is of unknown country. The agent also bumps the policy epoch
 * after a swap, so tracked flows are judged once more against the new data. */
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
