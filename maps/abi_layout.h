// Compile-time checks of the kernel ABI structs' layout on the C++ side. The BPF side is
// checked against the built object's BTF by tests/bpf (abi_layout_test). A change here
// is a change of PBPF_MAP_SCHEMA_VERSION.
#pragma once

#include <cstddef>

#include "maps/abi/binding.h"
#include "maps/abi/counters.h"
#include "maps/abi/limits.h"
#include "maps/abi/policy.h"

static_assert(sizeof(pbpf_policy_key) == 24);
static_assert(offsetof(pbpf_policy_key, prefixlen) == 0);
static_assert(offsetof(pbpf_policy_key, kind) == 4);
static_assert(offsetof(pbpf_policy_key, dir) == 5);
static_assert(offsetof(pbpf_policy_key, family_or_proto) == 6);
static_assert(offsetof(pbpf_policy_key, pad0) == 7);
static_assert(offsetof(pbpf_policy_key, data) == 8);

static_assert(sizeof(pbpf_policy_value) == 12);
static_assert(offsetof(pbpf_policy_value, class_id) == 0);
static_assert(offsetof(pbpf_policy_value, rule_id) == 4);
static_assert(offsetof(pbpf_policy_value, verdict) == 8);
static_assert(offsetof(pbpf_policy_value, flags) == 9);
static_assert(offsetof(pbpf_policy_value, pad0) == 10);

static_assert(sizeof(pbpf_binding) == 8);
static_assert(offsetof(pbpf_binding, persona_id) == 0);
static_assert(offsetof(pbpf_binding, flags) == 4);

static_assert(sizeof(pbpf_resolved) == 16);
static_assert(offsetof(pbpf_resolved, persona_id) == 0);
static_assert(offsetof(pbpf_resolved, pad0) == 4);
static_assert(offsetof(pbpf_resolved, epoch) == 8);

static_assert(sizeof(pbpf_globals) == 16);
static_assert(offsetof(pbpf_globals, binding_epoch) == 0);
static_assert(offsetof(pbpf_globals, schema_version) == 8);
static_assert(offsetof(pbpf_globals, pad0) == 12);

static_assert(sizeof(pbpf_dir_counters) == 48);
static_assert(offsetof(pbpf_dir_counters, allowed_packets) == 0);
static_assert(offsetof(pbpf_dir_counters, allowed_bytes) == 8);
static_assert(offsetof(pbpf_dir_counters, denied_packets) == 16);
static_assert(offsetof(pbpf_dir_counters, denied_bytes) == 24);
static_assert(offsetof(pbpf_dir_counters, audited_packets) == 32);
static_assert(offsetof(pbpf_dir_counters, audited_bytes) == 40);

static_assert(sizeof(pbpf_counters) == 96);
static_assert(offsetof(pbpf_counters, dir) == 0);
