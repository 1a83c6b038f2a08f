/* Map layouts after a change, for tests/bpf/map_migrate_test.cpp (migrate_v1.bpf.c is
 * before it). Not loaded by the agent. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct mkey {
	__u32 a;
	__u16 b;
	__u16 pad;
};

struct hval {
	__u32 y;   /* moved */
	__u32 pad;
	__u64 w;   /* new */
	__u64 x;   /* moved */
	__u64 z;   /* widened */
};

struct cval {
	__u64 packets;
	__u64 bytes;
	__u64 extra[2]; /* new */
};

struct lval {
	__u64 packets;
	__u64 bytes;
};

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct nval {
	__u32 v; /* narrowed */
	__s16 s; /* narrowed */
	__u16 pad;
};

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
	__type(value, struct lval); /* unchanged (struct cval before) */
} m_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, __u64); /* widened */
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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} m_type SEC(".maps"); /* a HASH in v1 */

char LICENSE[] SEC("license") = "GPL";
