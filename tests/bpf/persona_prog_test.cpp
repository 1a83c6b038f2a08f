// Table-driven tests of pbpf_cgroup_ingress/egress on the real skeleton: each row runs one
// frame through bpf_prog_test_run_opts and checks the verdict and the counter deltas.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <iostream>
#include <optional>

#include "maps/policy_map.h"
#include "tests/bpf/cgroup_util.h"
#include "tests/bpf/persona_fixture.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

// Persona ids of the table (see persona_fixture.cpp for the policies).
constexpr uint32_t kUnbound = 0;
constexpr uint32_t kWeb = 1;       // web_policy, enforcing
constexpr uint32_t kWebAudit = 2;  // web_policy, audit mode
constexpr uint32_t kNoPolicy = 3;  // bound, but pbpf_policies[3] is empty
constexpr uint32_t kAllowAll = 4;
constexpr uint32_t kDenyAll = 5;

enum class Count { None, Allowed, Denied, Audited };
constexpr uint32_t kPass = 1;
constexpr uint32_t kDrop = 0;

struct Row {
    std::string name;  // test name suffix: [A-Za-z0-9_]
    uint32_t persona;  // bound to the test's cgroup; kUnbound: no binding
    Prog prog;
    Packet packet;
    uint32_t retval;
    Count count;  // which counter of `persona` (index 0 when unbound) moves by one packet
};

std::ostream& operator<<(std::ostream& os, const Row& r) { return os << r.name; }

// Loaded once for the whole table: each row only rebinds the test's own cgroup.
class ProgTable : public ::testing::TestWithParam<Row> {
  public:
    static void SetUpTestSuite() {
        if (::geteuid() != 0) {
            unavailable_ = "needs root";
            return;
        }
        auto skel = load_persona_skeleton();
        if (!skel) {
            unavailable_ = skel.error().what();
            return;
        }
        skel_ = std::move(skel.value()).release();
        auto self = self_cgroup_path();
        auto mount = cgroup2_mount();
        if (!self || !mount) {
            unavailable_ = !self ? self.error().what() : mount.error().what();
            return;
        }
        auto id = cgroup_id(*mount + (*self == "/" ? "" : *self));
        if (!id) {
            unavailable_ = id.error().what();
            return;
        }
        self_cgroup_ = *id;
        for (auto [pid, entries] :
             {std::pair{kWeb, web_policy(false)}, std::pair{kWebAudit, web_policy(true)},
              std::pair{kAllowAll, uniform_policy(PBPF_VERDICT_ALLOW, 1)},
              std::pair{kDenyAll, uniform_policy(PBPF_VERDICT_DENY, 1)}}) {
            if (auto r = install_policy(skel_, pid, entries); !r) {
                unavailable_ = r.error().what();
                return;
            }
        }
    }
    static void TearDownTestSuite() {
        if (skel_) persona__destroy(skel_);
        skel_ = nullptr;
    }

  protected:
    void SetUp() override {
        if (!unavailable_.empty()) PBPF_KERNEL_UNAVAILABLE(unavailable_);
    }

    static inline persona* skel_ = nullptr;
    static inline uint64_t self_cgroup_ = 0;
    static inline std::string unavailable_;
};

void expect_delta(const pbpf_counters& before, const pbpf_counters& after, int dir, Count kind,
                  uint64_t bytes, const std::string& context) {
    pbpf_counters want = before;
    if (kind != Count::None) {
        auto& d = want.dir[dir];
        switch (kind) {
            case Count::Allowed:
                d.allowed_packets++, d.allowed_bytes += bytes;
                break;
            case Count::Denied: {
                d.denied_packets++, d.denied_bytes += bytes;
                // Exactly one reason moved by one (drop_counters_test.cpp checks which).
                uint64_t moved = 0;
                for (int r = 0; r < PBPF_DROP_REASON_SLOTS; ++r)
                    moved += after.dir[dir].dropped_by_reason[r] - d.dropped_by_reason[r];
                EXPECT_EQ(moved, 1u) << context << ": drops by reason";
                std::memcpy(d.dropped_by_reason, after.dir[dir].dropped_by_reason,
                            sizeof d.dropped_by_reason);
                break;
            }
            case Count::Audited:
                d.audited_packets++, d.audited_bytes += bytes;
                break;
            default:
                break;
        }
    }
    EXPECT_EQ(std::memcmp(&want, &after, sizeof want), 0)
        << context << "\n  expected counters: " << describe(want)
        << "\n  actual counters:   " << describe(after);
}

TEST_P(ProgTable, Verdict) {
    const Row& row = GetParam();
    if (row.persona == kUnbound) {
        ASSERT_TRUE(unbind_cgroup(skel_, self_cgroup_));
    } else {
        ASSERT_TRUE(bind_cgroup(skel_, self_cgroup_, row.persona));
    }
    const uint32_t counted = row.persona;  // index 0 is "no persona"
    const Bytes frame = row.packet.bytes();
    auto before = counters_of(skel_, counted);
    auto before0 = counters_of(skel_, 0);
    ASSERT_TRUE(before && before0);

    auto run = run_prog(skel_, row.prog, frame);
    ASSERT_TRUE(run) << run.error().what();

    const std::string context = "row " + row.name + ": " + prog_name(row.prog) +
                                " program, persona " + std::to_string(row.persona) + ", packet " +
                                row.packet.describe();
    EXPECT_EQ(run->retval, row.retval) << "verdict " << (run->retval ? "pass" : "drop")
                                       << ", expected " << (row.retval ? "pass" : "drop") << "\n"
                                       << context;
    auto after = counters_of(skel_, counted);
    ASSERT_TRUE(after);
    const int dir = row.prog == Prog::Ingress ? PBPF_DIR_INGRESS : PBPF_DIR_EGRESS;
    // cgroup_skb sees the frame without its Ethernet header.
    expect_delta(*before, *after, dir, row.count, frame.size() - 14, context);
    if (counted != 0) {
        auto after0 = counters_of(skel_, 0);
        ASSERT_TRUE(after0);
        expect_delta(*before0, *after0, dir, Count::None, 0, context + " (index 0)");
    }
}

Packet tcp4(const char* src, const char* dst, uint16_t dport) {
    return Packet().eth().ipv4(src, dst).tcp(40000, dport).payload(8);
}
Packet tcp6(const char* src, const char* dst, uint16_t dport) {
    return Packet().eth().ipv6(src, dst).tcp(40000, dport).payload(8);
}
Packet udp4(const char* dst, uint16_t dport) {
    return Packet().eth().ipv4("192.168.1.10", dst).udp(40000, dport).payload(12);
}
constexpr const char* kMe4 = "192.168.1.10";
constexpr const char* kMe6 = "fd00::10";

// Frame bytes: Ethernet 14, IPv4 header at 14 (protocol at 23), IPv6 header at 14.
std::vector<Row> rows() {
    const auto E = Prog::Egress;
    const auto I = Prog::Ingress;
    using C = Count;
    std::vector<Row> r = {
        // Egress, IPv4: CIDR nesting and port rules.
        {"egress_tcp_443_to_10_8_allowed", kWeb, E, tcp4(kMe4, "10.2.3.4", 443), kPass, C::Allowed},
        {"egress_tcp_443_to_10_1_16_nested_deny", kWeb, E, tcp4(kMe4, "10.1.2.3", 443), kDrop,
         C::Denied},
        {"egress_tcp_8000_to_10_1_16_keeps_outer_block", kWeb, E, tcp4(kMe4, "10.1.2.3", 8000),
         kPass, C::Allowed},
        {"egress_port_block_below_7999_denied", kWeb, E, tcp4(kMe4, "10.2.0.1", 7999), kDrop,
         C::Denied},
        {"egress_port_block_first_8000", kWeb, E, tcp4(kMe4, "10.2.0.1", 8000), kPass, C::Allowed},
        {"egress_port_block_last_8015", kWeb, E, tcp4(kMe4, "10.2.0.1", 8015), kPass, C::Allowed},
        {"egress_port_block_above_8016_denied", kWeb, E, tcp4(kMe4, "10.2.0.1", 8016), kDrop,
         C::Denied},
        {"egress_any_addr_tcp_443_allowed", kWeb, E, tcp4(kMe4, "8.8.8.8", 443), kPass, C::Allowed},
        {"egress_default_deny_tcp_80", kWeb, E, tcp4(kMe4, "8.8.8.8", 80), kDrop, C::Denied},
        {"egress_udp_53_to_10_8_allowed", kWeb, E, udp4("10.0.0.53", 53), kPass, C::Allowed},
        {"egress_udp_54_to_10_8_denied", kWeb, E, udp4("10.0.0.53", 54), kDrop, C::Denied},
        {"egress_udp_53_outside_denied", kWeb, E, udp4("8.8.8.8", 53), kDrop, C::Denied},
        {"egress_icmp_to_10_8_allowed", kWeb, E, Packet().ipv4(kMe4, "10.0.0.1").icmp_echo(), kPass,
         C::Allowed},
        {"egress_icmp_outside_denied", kWeb, E, Packet().ipv4(kMe4, "8.8.8.8").icmp_echo(), kDrop,
         C::Denied},
        {"egress_gre_to_10_8_other_denied", kWeb, E,
         Packet().ipv4(kMe4, "10.0.0.1").l4_proto(47).payload(8), kDrop, C::Denied},
        // IPv4 fragments: the first carries ports; a later one follows the verdict of its
        // datagram's first fragment (conntrack_test.cpp) and without one fails closed.
        {"egress_ipv4_first_fragment_uses_port", kWeb, E,
         tcp4(kMe4, "10.2.3.4", 443).ipv4_fragment(0, true), kPass, C::Allowed},
        {"egress_ipv4_later_fragment_without_first_dropped", kWeb, E,
         tcp4(kMe4, "10.2.3.4", 443)
             .ipv4_fragment(185, false)
             .mutate("ip id 0x7777", [](Bytes& b) { b[18] = 0x77, b[19] = 0x77; }),
         kDrop, C::Denied},
        // Egress, IPv6.
        {"egress_v6_tcp_22_to_db8_allowed", kWeb, E, tcp6(kMe6, "2001:db8::1", 22), kPass,
         C::Allowed},
        {"egress_v6_tcp_22_outside_denied", kWeb, E, tcp6(kMe6, "2001:db9::1", 22), kDrop,
         C::Denied},
        {"egress_v6_tcp_443_outside_allowed", kWeb, E, tcp6(kMe6, "2001:db9::1", 443), kPass,
         C::Allowed},
        {"egress_v6_ext_hbh_dstopts_443_allowed", kWeb, E,
         Packet()
             .ipv6(kMe6, "2001:db9::1")
             .ipv6_ext(kIpv6HopByHop, 8)
             .ipv6_ext(kIpv6DestOpts, 24)
             .tcp(1, 443),
         kPass, C::Allowed},
        {"egress_v6_ext_hbh_dstopts_22_denied", kWeb, E,
         Packet()
             .ipv6(kMe6, "2001:db9::1")
             .ipv6_ext(kIpv6HopByHop, 8)
             .ipv6_ext(kIpv6DestOpts, 24)
             .tcp(1, 22),
         kDrop, C::Denied},
        {"egress_v6_ext_routing_ah_frag_udp_53_allowed", kWeb, E,
         Packet()
             .ipv6(kMe6, "2001:db8::5")
             .ipv6_ext(kIpv6Routing, 16)
             .ipv6_ext(kIpv6Ah, 24)
             .ipv6_fragment(0, true)
             .udp(1, 53),
         kPass, C::Allowed},
        {"egress_v6_ext_routing_ah_frag_udp_54_denied", kWeb, E,
         Packet()
             .ipv6(kMe6, "2001:db8::5")
             .ipv6_ext(kIpv6Routing, 16)
             .ipv6_ext(kIpv6Ah, 24)
             .ipv6_fragment(0, true)
             .udp(1, 54),
         kDrop, C::Denied},
        {"egress_v6_later_fragment_without_first_dropped", kWeb, E,
         Packet().ipv6(kMe6, "2001:db9::1").ipv6_fragment(100, false, 0x9999).tcp(1, 443), kDrop,
         C::Denied},
        {"egress_icmpv6_to_db8_allowed", kWeb, E, Packet().ipv6(kMe6, "2001:db8::1").icmpv6_echo(),
         kPass, C::Allowed},
        {"egress_icmpv6_outside_denied", kWeb, E, Packet().ipv6(kMe6, "2001:db9::1").icmpv6_echo(),
         kDrop, C::Denied},
        {"egress_v6_gre_to_db8_other_allowed", kWeb, E,
         Packet().ipv6(kMe6, "2001:db8::1").l4_proto(47).payload(8), kPass, C::Allowed},
        {"egress_v6_gre_outside_other_denied", kWeb, E,
         Packet().ipv6(kMe6, "2001:db9::1").l4_proto(47).payload(8), kDrop, C::Denied},
        // ICMP (1) inside IPv6 is "other", not the IPv4 icmp bucket.
        {"egress_v6_proto_icmp4_is_other", kWeb, E, Packet().ipv6(kMe6, "2001:db9::1").icmp_echo(),
         kDrop, C::Denied},
        {"egress_v6_proto_icmp4_is_other_allowed", kWeb, E,
         Packet().ipv6(kMe6, "2001:db8::1").icmp_echo(), kPass, C::Allowed},
        // Ingress: the peer is the source, the port still the destination.
        {"ingress_tcp_22_denied", kWeb, I, tcp4("1.2.3.4", kMe4, 22), kDrop, C::Denied},
        {"ingress_default_allow_tcp_80", kWeb, I, tcp4("1.2.3.4", kMe4, 80), kPass, C::Allowed},
        {"ingress_peer_is_source", kWeb, I, tcp4("8.8.8.8", "10.1.2.3", 443), kPass, C::Allowed},
        {"egress_same_packet_peer_is_destination", kWeb, E, tcp4("8.8.8.8", "10.1.2.3", 443), kDrop,
         C::Denied},
        {"ingress_udp_allowed", kWeb, I, Packet().ipv4("1.2.3.4", kMe4).udp(53, 40000), kPass,
         C::Allowed},
        {"ingress_icmp_allowed", kWeb, I, Packet().ipv4("1.2.3.4", kMe4).icmp_echo(), kPass,
         C::Allowed},
        {"ingress_v6_tcp_22_allowed", kWeb, I, tcp6("2001:db9::1", kMe6, 22), kPass, C::Allowed},
        {"ingress_v6_icmpv6_allowed", kWeb, I, Packet().ipv6("2001:db9::1", kMe6).icmpv6_echo(),
         kPass, C::Allowed},
        // Audit mode: denies pass and count as audited; allows stay allowed.
        {"audit_egress_deny_passes", kWebAudit, E, tcp4(kMe4, "8.8.8.8", 80), kPass, C::Audited},
        {"audit_egress_allow_counts_allowed", kWebAudit, E, tcp4(kMe4, "10.2.3.4", 443), kPass,
         C::Allowed},
        {"audit_ingress_deny_passes", kWebAudit, I, tcp4("1.2.3.4", kMe4, 22), kPass, C::Audited},
        {"audit_v6_deny_passes", kWebAudit, E, tcp6(kMe6, "2001:db9::1", 22), kPass, C::Audited},
        // Uniform personas.
        {"allow_all_egress", kAllowAll, E, tcp4(kMe4, "8.8.8.8", 80), kPass, C::Allowed},
        {"allow_all_ingress_v6", kAllowAll, I, tcp6("2001:db9::1", kMe6, 22), kPass, C::Allowed},
        {"deny_all_egress_udp", kDenyAll, E, udp4("10.0.0.53", 53), kDrop, C::Denied},
        {"deny_all_ingress_icmpv6", kDenyAll, I, Packet().ipv6("2001:db9::1", kMe6).icmpv6_echo(),
         kDrop, C::Denied},
        // No persona: pass, counted under index 0, even when malformed (never parsed).
        {"unbound_egress_passes", kUnbound, E, tcp4(kMe4, "8.8.8.8", 80), kPass, C::Allowed},
        {"unbound_ingress_passes", kUnbound, I, tcp6("2001:db9::1", kMe6, 22), kPass, C::Allowed},
        {"unbound_truncated_passes", kUnbound, E, tcp4(kMe4, "8.8.8.8", 80).truncate(14 + 20 + 1),
         kPass, C::Allowed},
        // Bound persona whose policy is missing: fail closed.
        {"missing_policy_egress_drops", kNoPolicy, E, tcp4(kMe4, "10.2.3.4", 443), kDrop,
         C::Denied},
        {"missing_policy_ingress_drops", kNoPolicy, I, tcp4("1.2.3.4", kMe4, 80), kDrop, C::Denied},
        // Malformed or truncated (each would be allowed if whole): fail closed. A frame cut
        // inside the fixed IPv4/IPv6 header cannot be tested: bpf_prog_test_run refuses it
        // (EINVAL), as the stack never hands one to cgroup_skb either.
        {"malformed_tcp_ports_cut", kWeb, E, tcp4(kMe4, "10.2.3.4", 443).truncate(14 + 20 + 3),
         kDrop, C::Denied},
        // TCP is read up to its flags (conntrack needs them): a header cut before them
        // cannot be classified and fails closed; up to the flags is enough.
        {"malformed_tcp_cut_before_flags", kWeb, E,
         tcp4(kMe4, "10.2.3.4", 443).truncate(14 + 20 + 13), kDrop, C::Denied},
        {"truncated_after_tcp_flags_is_enough", kWeb, E,
         tcp4(kMe4, "10.2.3.4", 443).truncate(14 + 20 + 14), kPass, C::Allowed},
        {"truncated_after_udp_ports_is_enough", kWeb, E,
         udp4("10.0.0.53", 53).truncate(14 + 20 + 4), kPass, C::Allowed},
        {"malformed_ipv4_ihl_below_5", kWeb, E,
         tcp4(kMe4, "10.2.3.4", 443).mutate("ihl 4", [](Bytes& b) { b[14] = 0x44; }), kDrop,
         C::Denied},
        {"malformed_ipv4_ihl_past_end", kWeb, E,
         Packet()
             .ipv4(kMe4, "10.2.3.4")
             .tcp(1, 443)
             .mutate("ihl 15", [](Bytes& b) { b[14] = 0x4f; }),
         kDrop, C::Denied},
        {"malformed_ipv4_ethertype_with_v6_header", kWeb, E,
         tcp6(kMe6, "2001:db8::1", 22).ethertype(0x0800), kDrop, C::Denied},
        {"malformed_ipv6_ethertype_with_v4_header", kWeb, E,
         tcp4(kMe4, "10.2.3.4", 443).ethertype(0x86dd), kDrop, C::Denied},
        {"malformed_ipv6_tcp_ports_cut", kWeb, E,
         tcp6(kMe6, "2001:db8::1", 22).truncate(14 + 40 + 3), kDrop, C::Denied},
        {"malformed_ipv6_ext_header_cut", kWeb, E,
         Packet()
             .ipv6(kMe6, "2001:db8::1")
             .ipv6_ext(kIpv6HopByHop, 8)
             .tcp(1, 22)
             .truncate(14 + 40 + 1),
         kDrop, C::Denied},
        {"malformed_ipv6_fragment_header_cut", kWeb, E,
         Packet().ipv6(kMe6, "2001:db8::1").ipv6_fragment(0, true).udp(1, 53).truncate(14 + 40 + 3),
         kDrop, C::Denied},
        {"malformed_ipv6_ext_past_end", kWeb, E,
         Packet()
             .ipv6(kMe6, "2001:db8::1")
             .ipv6_ext(kIpv6HopByHop, 8)
             .tcp(1, 22)
             .mutate("hbh length 255", [](Bytes& b) { b[14 + 40 + 1] = 255; }),
         kDrop, C::Denied},
        {"ipv6_six_ext_headers_allowed", kWeb, E,
         Packet()
             .ipv6(kMe6, "2001:db9::1")
             .ipv6_ext(kIpv6HopByHop)
             .ipv6_ext(kIpv6DestOpts)
             .ipv6_ext(kIpv6Routing)
             .ipv6_ext(kIpv6DestOpts)
             .ipv6_ext(kIpv6DestOpts)
             .ipv6_ext(kIpv6DestOpts)
             .tcp(1, 443),
         kPass, C::Allowed},
        {"malformed_ipv6_seven_ext_headers", kWeb, E,
         Packet()
             .ipv6(kMe6, "2001:db9::1")
             .ipv6_ext(kIpv6HopByHop)
             .ipv6_ext(kIpv6DestOpts)
             .ipv6_ext(kIpv6Routing)
             .ipv6_ext(kIpv6DestOpts)
             .ipv6_ext(kIpv6DestOpts)
             .ipv6_ext(kIpv6DestOpts)
             .ipv6_ext(kIpv6DestOpts)
             .tcp(1, 443),
         kDrop, C::Denied},
        // No L4 header needed for ICMP: a bare IPv4 header is classified, not malformed.
        // ICMP is read up to the echo identifier (8 bytes); without them: fail closed.
        {"malformed_icmp_without_icmp_header", kWeb, E,
         Packet().ipv4(kMe4, "10.0.0.1").icmp_echo().truncate(14 + 20), kDrop, C::Denied},
        // Not IP at all (cannot come from an inet socket): passed, not counted.
        {"non_ip_ethertype_passes_uncounted", kWeb, E, Packet().eth().ethertype(0x0806).payload(28),
         kPass, C::None},
    };
    return r;
}

INSTANTIATE_TEST_SUITE_P(Rows, ProgTable, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& i) { return i.param.name; });

// The table's premise: under bpf_prog_test_run the skb's socket is created in the caller's
// cgroup, so bpf_skb_cgroup_id names the test process's cgroup.
class ProgEnv : public ProgTable {};

TEST_F(ProgEnv, TestRunSkbBelongsToCallersCgroup) {
    const Bytes frame = tcp4(kMe4, "8.8.8.8", 80).bytes();
    ASSERT_TRUE(bind_cgroup(skel_, self_cgroup_, kDenyAll));
    auto bound = run_prog(skel_, Prog::Egress, frame);
    ASSERT_TRUE(bound) << bound.error().what();
    EXPECT_EQ(bound->retval, kDrop)
        << "binding of cgroup id " << self_cgroup_ << " (this process's) was not applied";
    // Bound elsewhere only: the caller's cgroup has no persona.
    ASSERT_TRUE(unbind_cgroup(skel_, self_cgroup_));
    ASSERT_TRUE(bind_cgroup(skel_, self_cgroup_ + 1000000, kDenyAll));
    ASSERT_TRUE(bump_binding_epoch(skel_));
    auto unbound = run_prog(skel_, Prog::Egress, frame);
    ASSERT_TRUE(unbound);
    EXPECT_EQ(unbound->retval, kPass);
    ASSERT_TRUE(unbind_cgroup(skel_, self_cgroup_ + 1000000));
}

}  // namespace
}  // namespace pbpf::test
