/* Two builds of the same maps for tests/bpf/map_migrate_test.cpp: migrate_v1.bpf.o is the
 * layout before a change, migrate_v2.bpf.o (MIGRATE_V2) after it. Not loaded by the agent. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct mkey {
	__u32 a;
	__u16 b;
	__u16 pad;
};

#ifndef MIGRATE_V2
struct hval {
	__u64 x;
	__u32 y;
	__u32 z;   /* widened to __u64 in v2 */
	__u32 old; /* gone in v2 */
	__u32 pad;
};
#else
struct hval {
	__u32 y; /* moved */
	__u32 pad;
	__u64 w; /* new */
	__u64 x; /* moved */
	__u64 z; /* widened */
};
#endif

struct cval {
	__u64 packets;
	__u64 bytes;
#ifdef MIGRATE_V2
	__u64 extra[2]; /* new */
#endif
};

/* v2's m_lru value: struct cval of v1 under another name (the same layout). */
struct lval {
	__u64 packets;
	__u64 bytes;
};

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

#ifndef MIGRATE_V2
struct nval {
	__u64 v; /* narrowed to __u32 in v2 */
	__s32 s; /* narrowed to __s16 in v2 */
	__u32 pad;
};
#else
struct nval {
	__u32 v;
	__s16 s;
	__u16 pad;
};
#endif

struct inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} m_inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct mkey);
	__type(value, struct hval);
} m_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct cval);
} m_pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct mkey);
#ifndef MIGRATE_V2
	__type(value, struct cval);
#else
	__type(value, struct lval);
#endif
} m_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
#ifndef MIGRATE_V2
	__type(value, __u32);
#else
	__type(value, __u64); /* widened */
#endif
} m_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct nval);
} m_narrow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} m_outer SEC(".maps");

struct {
#ifndef MIGRATE_V2
	__uint(type, BPF_MAP_TYPE_HASH);
#else
	__uint(type, BPF_MAP_TYPE_ARRAY); /* the type changed: no migration */
#endif
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} m_type SEC(".maps");

char LICENSE[] SEC("license") = "GPL";
