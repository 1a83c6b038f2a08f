/* Sizes shared by the BPF programs and the agent: the defaults of the maps' max_entries,
 * which the agent sets from its [limits] config when it creates the maps. */
#pragma once

/* Persona ids index arrays: 0 means "no persona", personas get ids 1..MAX-2. */
#define PBPF_MAX_PERSONAS 4096
/* The id bound to the root of a fail-closed subtree: it has no policy, so every packet of
 * a workload that inherits it is dropped (reason fail-closed) until its own binding lands. */
#define PBPF_PERSONA_FAIL_CLOSED (PBPF_MAX_PERSONAS - 1)
/* cgroup id -> persona bindings. */
#define PBPF_MAX_BINDINGS 65536
/* (netns, ifindex) -> persona bindings. */
#define PBPF_MAX_IF_BINDINGS 4096
/* Rows of pbpf_binding_counters: bindings counted per binding (slot 0 is "none"). More
 * bindings than this still enforce, uncounted per binding. */
#define PBPF_MAX_BINDING_SLOTS 16384
/* (slot, direction, reason) triples in pbpf_binding_drops: four reasons in both
 * directions for every slot. */
#define PBPF_BINDING_DROP_ENTRIES (PBPF_MAX_BINDING_SLOTS * 8)
/* Tracked flows (LRU). */
#define PBPF_CT_ENTRIES 262144
/* Fragmented datagrams in flight whose first fragment passed (LRU). */
#define PBPF_FRAG_ENTRIES 16384
/* Ring buffer of flow events, bytes (a power of two, page multiple). */
#define PBPF_EVENT_RING_BYTES (1024 * 1024)
/* Entries (address + port + prefix-length lists) in one persona version's policy map.
 * The agent sizes each map to its persona, so this is a cap, not memory reserved. */
#define PBPF_MAX_POLICY_ENTRIES 262144
/* Deepest cgroup level the ancestor walk looks at. */
#define PBPF_MAX_CGROUP_DEPTH 32
/* Resolved cgroup -> persona results cached for cgroups bound through an ancestor. */
#define PBPF_RESOLVE_CACHE_ENTRIES 65536
/* pbpf_persona_settings.next_hops: next hops a persona may leave through. */
#define PBPF_MAX_NEXT_HOPS 8
/* pbpf_persona_settings.dns_servers: resolvers a persona's DNS queries go to. */
#define PBPF_MAX_DNS_SERVERS 4
/* pbpf_persona_settings.countries: one bit per two-letter code AA..ZZ, bit index
 * (c0 - 'A') * 26 + (c1 - 'A'), in 64-bit words (676 bits -> 11 words). */
#define PBPF_COUNTRY_BITS (26 * 26)
#define PBPF_COUNTRY_WORDS ((PBPF_COUNTRY_BITS + 63) / 64)
/* Prefixes of one geo dataset (both families, maps/abi/geo.h): a cap, tries are sized
 * to their dataset. The default dataset has about 400,000 after merging. */
#define PBPF_GEO_MAX_PREFIXES (4 * 1024 * 1024)
/* Layout version of every pinned map; bump on any change to a struct below. */
#ifndef PBPF_LAYOUT_TEST_NEXT
#define PBPF_MAP_SCHEMA_VERSION 8
#else
#define PBPF_MAP_SCHEMA_VERSION 1007 /* tests only: see maps/abi/conntrack.h */
#endif
