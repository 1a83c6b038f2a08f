// The maps/abi structs must have one layout in C++ and in the BPF object: static_asserts in
// maps/abi_layout.h pin the C++ side; this test compares every member offset with the BTF of
// persona.bpf.o.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "maps/abi/binding.h"
#include "maps/abi/conntrack.h"
#include "maps/abi/counters.h"
#include "maps/abi/events.h"
#include "maps/abi/forward.h"
#include "maps/abi/geo.h"
#include "maps/abi/policy.h"
#include "maps/abi/rtt.h"
#include "maps/abi/settings.h"
#include "maps/abi/topology.h"
#include "maps/abi_layout.h"  // the C++ side's static_asserts

namespace {

struct Member {
    const char* name;
    size_t offset;
};
struct Layout {
    const char* name;
    size_t size;
    std::vector<Member> members;
};

#define PBPF_MEMBER(type, m) \
    Member { #m, offsetof(type, m) }

std::vector<Layout> cxx_layouts() {
    return {
        {"pbpf_policy_key",
         sizeof(pbpf_policy_key),
         {PBPF_MEMBER(pbpf_policy_key, prefixlen), PBPF_MEMBER(pbpf_policy_key, kind),
          PBPF_MEMBER(pbpf_policy_key, dir), PBPF_MEMBER(pbpf_policy_key, family_or_proto),
          PBPF_MEMBER(pbpf_policy_key, table), PBPF_MEMBER(pbpf_policy_key, data)}},
        {"pbpf_policy_value",
         sizeof(pbpf_policy_value),
         {PBPF_MEMBER(pbpf_policy_value, class_id), PBPF_MEMBER(pbpf_policy_value, rule_id),
          PBPF_MEMBER(pbpf_policy_value, verdict), PBPF_MEMBER(pbpf_policy_value, flags),
          PBPF_MEMBER(pbpf_policy_value, port_lengths)}},
        {"pbpf_policy_lengths",
         sizeof(pbpf_policy_lengths),
         {PBPF_MEMBER(pbpf_policy_lengths, len)}},
        {"pbpf_binding",
         sizeof(pbpf_binding),
         {PBPF_MEMBER(pbpf_binding, persona_id), PBPF_MEMBER(pbpf_binding, flags),
          PBPF_MEMBER(pbpf_binding, counter_slot), PBPF_MEMBER(pbpf_binding, pad0)}},
        {"pbpf_resolved",
         sizeof(pbpf_resolved),
         {PBPF_MEMBER(pbpf_resolved, persona_id), PBPF_MEMBER(pbpf_resolved, counter_slot),
          PBPF_MEMBER(pbpf_resolved, epoch)}},
        {"pbpf_globals",
         sizeof(pbpf_globals),
         {PBPF_MEMBER(pbpf_globals, binding_epoch), PBPF_MEMBER(pbpf_globals, schema_version),
          PBPF_MEMBER(pbpf_globals, pad0), PBPF_MEMBER(pbpf_globals, policy_epoch),
          PBPF_MEMBER(pbpf_globals, event_rate), PBPF_MEMBER(pbpf_globals, event_burst)}},
        {"pbpf_if_key",
         sizeof(pbpf_if_key),
         {PBPF_MEMBER(pbpf_if_key, netns_cookie), PBPF_MEMBER(pbpf_if_key, ifindex),
          PBPF_MEMBER(pbpf_if_key, pad0)}},
        {"pbpf_ct_key",
         sizeof(pbpf_ct_key),
         {PBPF_MEMBER(pbpf_ct_key, workload), PBPF_MEMBER(pbpf_ct_key, ifindex),
          PBPF_MEMBER(pbpf_ct_key, family), PBPF_MEMBER(pbpf_ct_key, proto),
          PBPF_MEMBER(pbpf_ct_key, local_port), PBPF_MEMBER(pbpf_ct_key, remote_port),
          PBPF_MEMBER(pbpf_ct_key, pad0), PBPF_MEMBER(pbpf_ct_key, pad1),
          PBPF_MEMBER(pbpf_ct_key, local), PBPF_MEMBER(pbpf_ct_key, remote)}},
        {"pbpf_ct_value",
         sizeof(pbpf_ct_value),
         {PBPF_MEMBER(pbpf_ct_value, created_ns), PBPF_MEMBER(pbpf_ct_value, last_seen_ns),
          PBPF_MEMBER(pbpf_ct_value, policy_epoch), PBPF_MEMBER(pbpf_ct_value, packets),
          PBPF_MEMBER(pbpf_ct_value, bytes), PBPF_MEMBER(pbpf_ct_value, persona_id),
          PBPF_MEMBER(pbpf_ct_value, rule_id), PBPF_MEMBER(pbpf_ct_value, origin),
          PBPF_MEMBER(pbpf_ct_value, state), PBPF_MEMBER(pbpf_ct_value, flags),
          PBPF_MEMBER(pbpf_ct_value, pad0), PBPF_MEMBER(pbpf_ct_value, pad1)}},
        {"pbpf_frag_key",
         sizeof(pbpf_frag_key),
         {PBPF_MEMBER(pbpf_frag_key, workload), PBPF_MEMBER(pbpf_frag_key, ifindex),
          PBPF_MEMBER(pbpf_frag_key, id), PBPF_MEMBER(pbpf_frag_key, family),
          PBPF_MEMBER(pbpf_frag_key, proto), PBPF_MEMBER(pbpf_frag_key, pad0),
          PBPF_MEMBER(pbpf_frag_key, pad1), PBPF_MEMBER(pbpf_frag_key, saddr),
          PBPF_MEMBER(pbpf_frag_key, daddr)}},
        {"pbpf_frag_value",
         sizeof(pbpf_frag_value),
         {PBPF_MEMBER(pbpf_frag_value, created_ns), PBPF_MEMBER(pbpf_frag_value, persona_id),
          PBPF_MEMBER(pbpf_frag_value, flags), PBPF_MEMBER(pbpf_frag_value, pad0)}},
        {"pbpf_flow_event",
         sizeof(pbpf_flow_event),
         {PBPF_MEMBER(pbpf_flow_event, ts_ns),   PBPF_MEMBER(pbpf_flow_event, workload),
          PBPF_MEMBER(pbpf_flow_event, ifindex), PBPF_MEMBER(pbpf_flow_event, persona_id),
          PBPF_MEMBER(pbpf_flow_event, rule_id), PBPF_MEMBER(pbpf_flow_event, len),
          PBPF_MEMBER(pbpf_flow_event, verdict), PBPF_MEMBER(pbpf_flow_event, reason),
          PBPF_MEMBER(pbpf_flow_event, dir),     PBPF_MEMBER(pbpf_flow_event, family),
          PBPF_MEMBER(pbpf_flow_event, proto),   PBPF_MEMBER(pbpf_flow_event, tcp_flags),
          PBPF_MEMBER(pbpf_flow_event, sport),   PBPF_MEMBER(pbpf_flow_event, dport),
          PBPF_MEMBER(pbpf_flow_event, flags),   PBPF_MEMBER(pbpf_flow_event, pad0),
          PBPF_MEMBER(pbpf_flow_event, country), PBPF_MEMBER(pbpf_flow_event, pad1),
          PBPF_MEMBER(pbpf_flow_event, saddr),   PBPF_MEMBER(pbpf_flow_event, daddr)}},
        {"pbpf_event_state",
         sizeof(pbpf_event_state),
         {PBPF_MEMBER(pbpf_event_state, tokens), PBPF_MEMBER(pbpf_event_state, last_ns),
          PBPF_MEMBER(pbpf_event_state, emitted), PBPF_MEMBER(pbpf_event_state, rate_limited),
          PBPF_MEMBER(pbpf_event_state, ring_full)}},
        {"pbpf_dir_counters",
         sizeof(pbpf_dir_counters),
         {PBPF_MEMBER(pbpf_dir_counters, allowed_packets),
          PBPF_MEMBER(pbpf_dir_counters, allowed_bytes),
          PBPF_MEMBER(pbpf_dir_counters, denied_packets),
          PBPF_MEMBER(pbpf_dir_counters, denied_bytes),
          PBPF_MEMBER(pbpf_dir_counters, audited_packets),
          PBPF_MEMBER(pbpf_dir_counters, audited_bytes),
          PBPF_MEMBER(pbpf_dir_counters, dropped_by_reason)}},
        {"pbpf_counters", sizeof(pbpf_counters), {PBPF_MEMBER(pbpf_counters, dir)}},
        {"pbpf_binding_dir_counters",
         sizeof(pbpf_binding_dir_counters),
         {PBPF_MEMBER(pbpf_binding_dir_counters, passed_packets),
          PBPF_MEMBER(pbpf_binding_dir_counters, passed_bytes),
          PBPF_MEMBER(pbpf_binding_dir_counters, dropped_packets),
          PBPF_MEMBER(pbpf_binding_dir_counters, dropped_bytes)}},
        {"pbpf_binding_counters",
         sizeof(pbpf_binding_counters),
         {PBPF_MEMBER(pbpf_binding_counters, dir)}},
        {"pbpf_binding_drop_key",
         sizeof(pbpf_binding_drop_key),
         {PBPF_MEMBER(pbpf_binding_drop_key, slot), PBPF_MEMBER(pbpf_binding_drop_key, dir),
          PBPF_MEMBER(pbpf_binding_drop_key, reason), PBPF_MEMBER(pbpf_binding_drop_key, pad)}},
        {"pbpf_geo_key",
         sizeof(pbpf_geo_key),
         {PBPF_MEMBER(pbpf_geo_key, prefixlen), PBPF_MEMBER(pbpf_geo_key, family),
          PBPF_MEMBER(pbpf_geo_key, addr), PBPF_MEMBER(pbpf_geo_key, pad0)}},
        {"pbpf_geo_value",
         sizeof(pbpf_geo_value),
         {PBPF_MEMBER(pbpf_geo_value, country), PBPF_MEMBER(pbpf_geo_value, code)}},
        {"pbpf_geo4_block", sizeof(pbpf_geo4_block), {PBPF_MEMBER(pbpf_geo4_block, entry)}},
        {"pbpf_qos",
         sizeof(pbpf_qos),
         {PBPF_MEMBER(pbpf_qos, flags), PBPF_MEMBER(pbpf_qos, class_minor),
          PBPF_MEMBER(pbpf_qos, dscp), PBPF_MEMBER(pbpf_qos, priority),
          PBPF_MEMBER(pbpf_qos, ingress_rate_bps), PBPF_MEMBER(pbpf_qos, ingress_burst_bytes),
          PBPF_MEMBER(pbpf_qos, latency_target_ns)}},
        {"pbpf_topology",
         sizeof(pbpf_topology),
         {PBPF_MEMBER(pbpf_topology, flags), PBPF_MEMBER(pbpf_topology, max_hops),
          PBPF_MEMBER(pbpf_topology, next_hop_count), PBPF_MEMBER(pbpf_topology, pad0),
          PBPF_MEMBER(pbpf_topology, next_hops)}},
        {"pbpf_ids_threshold",
         sizeof(pbpf_ids_threshold),
         {PBPF_MEMBER(pbpf_ids_threshold, count), PBPF_MEMBER(pbpf_ids_threshold, window_ns),
          PBPF_MEMBER(pbpf_ids_threshold, block_ns)}},
        {"pbpf_shaping",
         sizeof(pbpf_shaping),
         {PBPF_MEMBER(pbpf_shaping, rate_bps), PBPF_MEMBER(pbpf_shaping, burst_bytes)}},
        {"pbpf_addr",
         sizeof(pbpf_addr),
         {PBPF_MEMBER(pbpf_addr, family), PBPF_MEMBER(pbpf_addr, pad0),
          PBPF_MEMBER(pbpf_addr, addr)}},
        {"pbpf_persona_settings",
         sizeof(pbpf_persona_settings),
         {PBPF_MEMBER(pbpf_persona_settings, flags), PBPF_MEMBER(pbpf_persona_settings, min_tls),
          PBPF_MEMBER(pbpf_persona_settings, priority),
          PBPF_MEMBER(pbpf_persona_settings, max_hops),
          PBPF_MEMBER(pbpf_persona_settings, next_hop_count),
          PBPF_MEMBER(pbpf_persona_settings, dns_count), PBPF_MEMBER(pbpf_persona_settings, pad0),
          PBPF_MEMBER(pbpf_persona_settings, route_table),
          PBPF_MEMBER(pbpf_persona_settings, latency_target_ns),
          PBPF_MEMBER(pbpf_persona_settings, egress), PBPF_MEMBER(pbpf_persona_settings, ingress),
          PBPF_MEMBER(pbpf_persona_settings, syn_flood),
          PBPF_MEMBER(pbpf_persona_settings, port_scan),
          PBPF_MEMBER(pbpf_persona_settings, route_via),
          PBPF_MEMBER(pbpf_persona_settings, next_hops),
          PBPF_MEMBER(pbpf_persona_settings, dns_servers), PBPF_MEMBER(pbpf_persona_settings, pad1),
          PBPF_MEMBER(pbpf_persona_settings, countries)}},
        {"pbpf_forward_key",
         sizeof(pbpf_forward_key),
         {PBPF_MEMBER(pbpf_forward_key, dir), PBPF_MEMBER(pbpf_forward_key, proto),
          PBPF_MEMBER(pbpf_forward_key, family), PBPF_MEMBER(pbpf_forward_key, pad0),
          PBPF_MEMBER(pbpf_forward_key, port), PBPF_MEMBER(pbpf_forward_key, pad1),
          PBPF_MEMBER(pbpf_forward_key, addr)}},
        {"pbpf_forward_value",
         sizeof(pbpf_forward_value),
         {PBPF_MEMBER(pbpf_forward_value, family), PBPF_MEMBER(pbpf_forward_value, pad0),
          PBPF_MEMBER(pbpf_forward_value, port), PBPF_MEMBER(pbpf_forward_value, addr)}},
        {"pbpf_rtt_hist",
         sizeof(pbpf_rtt_hist),
         {PBPF_MEMBER(pbpf_rtt_hist, samples), PBPF_MEMBER(pbpf_rtt_hist, sum_us),
          PBPF_MEMBER(pbpf_rtt_hist, buckets)}},
        {"pbpf_rtt_sock",
         sizeof(pbpf_rtt_sock),
         {PBPF_MEMBER(pbpf_rtt_sock, persona_id), PBPF_MEMBER(pbpf_rtt_sock, counter_slot),
          PBPF_MEMBER(pbpf_rtt_sock, epoch)}},
        {"pbpf_rtt_key",
         sizeof(pbpf_rtt_key),
         {PBPF_MEMBER(pbpf_rtt_key, persona_id), PBPF_MEMBER(pbpf_rtt_key, counter_slot)}},
    };
}

struct BtfDeleter {
    void operator()(btf* b) const { btf__free(b); }
};

TEST(AbiLayout, BpfObjectBtfMatchesCxxLayout) {
    const char* path = PBPF_PERSONA_BPF_OBJECT;
    std::unique_ptr<btf, BtfDeleter> b(btf__parse_elf(path, nullptr));
    ASSERT_TRUE(b) << "btf__parse_elf(" << path << "): " << std::strerror(errno);

    for (const Layout& want : cxx_layouts()) {
        SCOPED_TRACE(want.name);
        const int id = btf__find_by_name_kind(b.get(), want.name, BTF_KIND_STRUCT);
        ASSERT_GT(id, 0) << "struct " << want.name << " is not (fully) in the BTF of " << path
                         << ": reference it from persona.bpf.c";
        const btf_type* t = btf__type_by_id(b.get(), id);
        EXPECT_EQ(t->size, want.size) << "sizeof(" << want.name << ")";
        const unsigned n = btf_vlen(t);
        ASSERT_EQ(n, want.members.size()) << "member count of " << want.name;
        const btf_member* m = btf_members(t);
        for (unsigned i = 0; i < n; ++i) {
            const char* name = btf__name_by_offset(b.get(), m[i].name_off);
            EXPECT_STREQ(name, want.members[i].name) << want.name << " member " << i;
            EXPECT_EQ(btf_member_bitfield_size(t, i), 0u)
                << want.name << "." << name << " must not be a bitfield";
            EXPECT_EQ(btf_member_bit_offset(t, i) / 8, want.members[i].offset)
                << "offset of " << want.name << "." << name;
        }
    }
}

}  // namespace
