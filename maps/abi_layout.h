// Compile-time checks of the kernel ABI structs' layout on the C++ side. The BPF side is
// checked against the built object's BTF by tests/bpf (abi_layout_test). A change here
// is a change of PBPF_MAP_SCHEMA_VERSION.
#pragma once

#include <cstddef>
#include <type_traits>

#include "maps/abi/binding.h"
#include "maps/abi/conntrack.h"
#include "maps/abi/counters.h"
#include "maps/abi/events.h"
#include "maps/abi/forward.h"
#include "maps/abi/geo.h"
#include "maps/abi/limits.h"
#include "maps/abi/policy.h"
#include "maps/abi/qos.h"
#include "maps/abi/rtt.h"
#include "maps/abi/settings.h"
#include "maps/abi/topology.h"

static_assert(sizeof(pbpf_policy_key) == 24);
static_assert(offsetof(pbpf_policy_key, prefixlen) == 0);
static_assert(offsetof(pbpf_policy_key, kind) == 4);
static_assert(offsetof(pbpf_policy_key, dir) == 5);
static_assert(offsetof(pbpf_policy_key, family_or_proto) == 6);
static_assert(offsetof(pbpf_policy_key, table) == 7);
static_assert(offsetof(pbpf_policy_key, data) == 8);

static_assert(sizeof(pbpf_policy_value) == 12);
static_assert(offsetof(pbpf_policy_value, class_id) == 0);
static_assert(offsetof(pbpf_policy_value, rule_id) == 4);
static_assert(offsetof(pbpf_policy_value, verdict) == 8);
static_assert(offsetof(pbpf_policy_value, flags) == 9);
static_assert(offsetof(pbpf_policy_value, port_lengths) == 10);
static_assert(sizeof(pbpf_policy_lengths) == sizeof(pbpf_policy_value));

static_assert(sizeof(pbpf_binding) == 16);
static_assert(offsetof(pbpf_binding, persona_id) == 0);
static_assert(offsetof(pbpf_binding, flags) == 4);
static_assert(offsetof(pbpf_binding, counter_slot) == 8);
static_assert(offsetof(pbpf_binding, pad0) == 12);

static_assert(sizeof(pbpf_resolved) == 16);
static_assert(offsetof(pbpf_resolved, persona_id) == 0);
static_assert(offsetof(pbpf_resolved, counter_slot) == 4);
static_assert(offsetof(pbpf_resolved, epoch) == 8);

static_assert(sizeof(pbpf_globals) == 32);
static_assert(offsetof(pbpf_globals, binding_epoch) == 0);
static_assert(offsetof(pbpf_globals, schema_version) == 8);  // fixed in every layout
static_assert(offsetof(pbpf_globals, pad0) == 12);
static_assert(offsetof(pbpf_globals, policy_epoch) == 16);
static_assert(offsetof(pbpf_globals, event_rate) == 24);
static_assert(offsetof(pbpf_globals, event_burst) == 28);

static_assert(sizeof(pbpf_if_key) == 16);
static_assert(offsetof(pbpf_if_key, ifindex) == 8);

static_assert(sizeof(pbpf_ct_key) == 56);
static_assert(offsetof(pbpf_ct_key, ifindex) == 8);
static_assert(offsetof(pbpf_ct_key, family) == 12);
static_assert(offsetof(pbpf_ct_key, proto) == 13);
static_assert(offsetof(pbpf_ct_key, local_port) == 14);
static_assert(offsetof(pbpf_ct_key, remote_port) == 16);
static_assert(offsetof(pbpf_ct_key, local) == 24);
static_assert(offsetof(pbpf_ct_key, remote) == 40);

#ifndef PBPF_LAYOUT_TEST_NEXT  // the tests' other layout (maps/abi/conntrack.h)
static_assert(sizeof(pbpf_ct_value) == 72);
static_assert(offsetof(pbpf_ct_value, packets) == 24);
static_assert(offsetof(pbpf_ct_value, bytes) == 40);
static_assert(offsetof(pbpf_ct_value, persona_id) == 56);
static_assert(offsetof(pbpf_ct_value, origin) == 64);
#endif

static_assert(sizeof(pbpf_frag_key) == 56);
static_assert(offsetof(pbpf_frag_key, id) == 12);
static_assert(offsetof(pbpf_frag_key, saddr) == 24);
static_assert(sizeof(pbpf_frag_value) == 16);

static_assert(sizeof(pbpf_flow_event) == 80);
static_assert(offsetof(pbpf_flow_event, verdict) == 32);
static_assert(offsetof(pbpf_flow_event, sport) == 38);
static_assert(offsetof(pbpf_flow_event, flags) == 42);
static_assert(offsetof(pbpf_flow_event, country) == 44);
static_assert(offsetof(pbpf_flow_event, saddr) == 48);
static_assert(offsetof(pbpf_flow_event, daddr) == 64);

static_assert(sizeof(pbpf_event_state) == 40);

static_assert(sizeof(pbpf_geo_key) == 24);
static_assert(offsetof(pbpf_geo_key, family) == 4);
static_assert(offsetof(pbpf_geo_key, addr) == 5);
static_assert(sizeof(pbpf_geo_value) == 4);
static_assert(sizeof(pbpf_geo4_block) == 512);

static_assert(offsetof(pbpf_dir_counters, allowed_packets) == 0);
static_assert(offsetof(pbpf_dir_counters, allowed_bytes) == 8);
static_assert(offsetof(pbpf_dir_counters, denied_packets) == 16);
static_assert(offsetof(pbpf_dir_counters, denied_bytes) == 24);
static_assert(offsetof(pbpf_dir_counters, audited_packets) == 32);
static_assert(offsetof(pbpf_dir_counters, audited_bytes) == 40);
static_assert(offsetof(pbpf_dir_counters, dropped_by_reason) == 48);
static_assert(PBPF_DROP_REASON_SLOTS > PBPF_REASON_LAST);
static_assert(sizeof(pbpf_dir_counters) == 48 + 8 * PBPF_DROP_REASON_SLOTS);

static_assert(sizeof(pbpf_counters) == 2 * sizeof(pbpf_dir_counters));

static_assert(sizeof(pbpf_binding_dir_counters) == 32);
static_assert(offsetof(pbpf_binding_dir_counters, passed_packets) == 0);
static_assert(offsetof(pbpf_binding_dir_counters, passed_bytes) == 8);
static_assert(offsetof(pbpf_binding_dir_counters, dropped_packets) == 16);
static_assert(offsetof(pbpf_binding_dir_counters, dropped_bytes) == 24);
static_assert(sizeof(pbpf_binding_counters) == 64);
static_assert(offsetof(pbpf_binding_counters, dir) == 0);
static_assert(sizeof(pbpf_binding_drop_key) == 8);
static_assert(offsetof(pbpf_binding_drop_key, slot) == 0);
static_assert(offsetof(pbpf_binding_drop_key, dir) == 4);
static_assert(offsetof(pbpf_binding_drop_key, reason) == 5);

static_assert(sizeof(pbpf_qos) == 32);
static_assert(offsetof(pbpf_qos, flags) == 0);
static_assert(offsetof(pbpf_qos, class_minor) == 4);
static_assert(offsetof(pbpf_qos, dscp) == 6);
static_assert(offsetof(pbpf_qos, priority) == 7);
static_assert(offsetof(pbpf_qos, ingress_rate_bps) == 8);
static_assert(offsetof(pbpf_qos, ingress_burst_bytes) == 16);
static_assert(offsetof(pbpf_qos, latency_target_ns) == 24);

static_assert(sizeof(pbpf_topology) == 168);
static_assert(offsetof(pbpf_topology, flags) == 0);
static_assert(offsetof(pbpf_topology, max_hops) == 4);
static_assert(offsetof(pbpf_topology, next_hop_count) == 5);
static_assert(offsetof(pbpf_topology, pad0) == 6);
static_assert(offsetof(pbpf_topology, next_hops) == 8);
static_assert(offsetof(pbpf_counters, dir) == 0);

static_assert(sizeof(pbpf_ids_threshold) == 24);
static_assert(offsetof(pbpf_ids_threshold, count) == 0);
static_assert(offsetof(pbpf_ids_threshold, window_ns) == 8);
static_assert(offsetof(pbpf_ids_threshold, block_ns) == 16);

static_assert(sizeof(pbpf_shaping) == 16);
static_assert(offsetof(pbpf_shaping, rate_bps) == 0);
static_assert(offsetof(pbpf_shaping, burst_bytes) == 8);

static_assert(sizeof(pbpf_addr) == 20);
static_assert(offsetof(pbpf_addr, family) == 0);
static_assert(offsetof(pbpf_addr, pad0) == 1);
static_assert(offsetof(pbpf_addr, addr) == 4);

static_assert(PBPF_COUNTRY_WORDS == 11);
static_assert(sizeof(pbpf_persona_settings) == 456);
static_assert(sizeof(pbpf_persona_settings) % 8 == 0);
static_assert(offsetof(pbpf_persona_settings, flags) == 0);
static_assert(offsetof(pbpf_persona_settings, min_tls) == 4);
static_assert(offsetof(pbpf_persona_settings, priority) == 6);
static_assert(offsetof(pbpf_persona_settings, max_hops) == 7);
static_assert(offsetof(pbpf_persona_settings, next_hop_count) == 8);
static_assert(offsetof(pbpf_persona_settings, dns_count) == 9);
static_assert(offsetof(pbpf_persona_settings, pad0) == 10);
static_assert(offsetof(pbpf_persona_settings, route_table) == 12);
static_assert(offsetof(pbpf_persona_settings, latency_target_ns) == 16);
static_assert(offsetof(pbpf_persona_settings, egress) == 24);
static_assert(offsetof(pbpf_persona_settings, ingress) == 40);
static_assert(offsetof(pbpf_persona_settings, syn_flood) == 56);
static_assert(offsetof(pbpf_persona_settings, port_scan) == 80);
static_assert(offsetof(pbpf_persona_settings, route_via) == 104);
static_assert(offsetof(pbpf_persona_settings, next_hops) == 124);
static_assert(offsetof(pbpf_persona_settings, dns_servers) == 284);
static_assert(offsetof(pbpf_persona_settings, pad1) == 364);
static_assert(offsetof(pbpf_persona_settings, countries) == 368);

static_assert(sizeof(pbpf_forward_key) == 24);
static_assert(offsetof(pbpf_forward_key, dir) == 0);
static_assert(offsetof(pbpf_forward_key, proto) == 1);
static_assert(offsetof(pbpf_forward_key, family) == 2);
static_assert(offsetof(pbpf_forward_key, pad0) == 3);
static_assert(offsetof(pbpf_forward_key, port) == 4);
static_assert(offsetof(pbpf_forward_key, pad1) == 6);
static_assert(offsetof(pbpf_forward_key, addr) == 8);

static_assert(sizeof(pbpf_forward_value) == 20);
static_assert(offsetof(pbpf_forward_value, family) == 0);
static_assert(offsetof(pbpf_forward_value, pad0) == 1);
static_assert(offsetof(pbpf_forward_value, port) == 2);
static_assert(offsetof(pbpf_forward_value, addr) == 4);

// No implicit padding anywhere: every byte of a key or value is a named field, so zeroing
// the named fields zeroes the whole struct.
static_assert(std::has_unique_object_representations_v<pbpf_policy_key>);
static_assert(std::has_unique_object_representations_v<pbpf_policy_value>);
static_assert(std::has_unique_object_representations_v<pbpf_binding>);
static_assert(std::has_unique_object_representations_v<pbpf_resolved>);
static_assert(std::has_unique_object_representations_v<pbpf_globals>);
static_assert(std::has_unique_object_representations_v<pbpf_counters>);
static_assert(std::has_unique_object_representations_v<pbpf_binding_counters>);
static_assert(std::has_unique_object_representations_v<pbpf_binding_drop_key>);
static_assert(std::has_unique_object_representations_v<pbpf_persona_settings>);
static_assert(std::has_unique_object_representations_v<pbpf_forward_key>);
static_assert(std::has_unique_object_representations_v<pbpf_forward_value>);

// TCP RTT (maps/abi/rtt.h).
static_assert(PBPF_RTT_BUCKETS == 192);
static_assert(sizeof(pbpf_rtt_hist) == 16 + 4 * PBPF_RTT_BUCKETS);
static_assert(offsetof(pbpf_rtt_hist, samples) == 0);
static_assert(offsetof(pbpf_rtt_hist, sum_us) == 8);
static_assert(offsetof(pbpf_rtt_hist, buckets) == 16);
static_assert(sizeof(pbpf_rtt_key) == 8);
static_assert(offsetof(pbpf_rtt_key, persona_id) == 0);
static_assert(offsetof(pbpf_rtt_key, counter_slot) == 4);
static_assert(sizeof(pbpf_rtt_sock) == 16);
static_assert(offsetof(pbpf_rtt_sock, persona_id) == 0);
static_assert(offsetof(pbpf_rtt_sock, counter_slot) == 4);
static_assert(offsetof(pbpf_rtt_sock, epoch) == 8);
static_assert(std::has_unique_object_representations_v<pbpf_rtt_hist>);
static_assert(std::has_unique_object_representations_v<pbpf_rtt_sock>);
static_assert(std::has_unique_object_representations_v<pbpf_rtt_key>);
