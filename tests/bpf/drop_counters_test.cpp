// Drops by reason and per-binding counters on the real program (bpf_prog_test_run): which
// reason row a rule drop, a default drop and a missing policy land in, and what the
// binding's counter slot sees, in each direction.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "maps/abi/events.h"
#include "maps/policy_map.h"
#include "tests/bpf/cgroup_util.h"
#include "tests/bpf/persona_fixture.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

constexpr uint32_t kWeb = 7;
constexpr uint32_t kNoPolicy = 8;  // bound, no policy map: fails closed
constexpr uint32_t kSlot = 42;
constexpr const char* kMe4 = "192.168.1.10";

class DropCounters : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) PBPF_KERNEL_UNAVAILABLE("needs root");
        auto skel = load_persona_skeleton();
        if (!skel) PBPF_KERNEL_UNAVAILABLE(skel.error().what());
        skel_ = std::move(*skel);
        auto self = self_cgroup_path();
        auto mount = cgroup2_mount();
        ASSERT_TRUE(self && mount);
        auto id = cgroup_id(*mount + (*self == "/" ? "" : *self));
        ASSERT_TRUE(id) << id.error().what();
        self_cgroup_ = *id;
        ASSERT_TRUE(install_policy(skel_.get(), kWeb, web_policy(false)));
    }

    // Runs `packet` through the program and returns the verdict (1 pass, 0 drop).
    uint32_t run(Prog prog, const Packet& packet) {
        auto r = run_prog(skel_.get(), prog, packet.bytes());
        EXPECT_TRUE(r) << r.error().what();
        return r ? r->retval : 99;
    }
    pbpf_counters persona_counters(uint32_t id) {
        auto c = counters_of(skel_.get(), id);
        EXPECT_TRUE(c) << c.error().what();
        return c ? *c : pbpf_counters{};
    }
    pbpf_binding_counters slot_counters(uint32_t slot) {
        auto c = read_binding_counters(bpf_map__fd(skel_->maps.pbpf_binding_counters), slot);
        EXPECT_TRUE(c) << c.error().what();
        return c ? *c : pbpf_binding_counters{};
    }

    // The binding drop-reason map, summed over CPUs, by slot.
    std::map<uint32_t, BindingDropReasons> binding_drops() {
        auto d = read_binding_drops(bpf_map__fd(skel_->maps.pbpf_binding_drops));
        EXPECT_TRUE(d) << d.error().what();
        return d ? *d : std::map<uint32_t, BindingDropReasons>{};
    }

    Skeleton skel_;
    uint64_t self_cgroup_ = 0;
};

Packet tcp4(const char* dst, uint16_t dport) {
    return Packet().eth().ipv4(kMe4, dst).tcp(40000, dport).payload(8);
}

TEST_F(DropCounters, RuleAndDefaultDropsLandInTheirReasons) {
    ASSERT_TRUE(bind_cgroup(skel_.get(), self_cgroup_, kWeb, kSlot));
    // web_policy: rule 5 denies tcp 443 to 10.1/16; egress default deny; rule 1 allows 443.
    EXPECT_EQ(run(Prog::Egress, tcp4("10.1.2.3", 443)), 0u);
    EXPECT_EQ(run(Prog::Egress, tcp4("8.8.8.8", 80)), 0u);
    EXPECT_EQ(run(Prog::Egress, tcp4("8.8.4.4", 81)), 0u);
    EXPECT_EQ(run(Prog::Egress, tcp4("10.2.3.4", 443)), 1u);
    // Ingress rule 6 denies tcp 22.
    EXPECT_EQ(run(Prog::Ingress, Packet().eth().ipv4("1.2.3.4", kMe4).tcp(5000, 22).payload(8)),
              0u);

    const auto c = persona_counters(kWeb);
    const auto& eg = c.dir[PBPF_DIR_EGRESS];
    const auto& in = c.dir[PBPF_DIR_INGRESS];
    EXPECT_EQ(eg.dropped_by_reason[PBPF_REASON_RULE], 1u) << describe(c);
    EXPECT_EQ(eg.dropped_by_reason[PBPF_REASON_DEFAULT], 2u) << describe(c);
    EXPECT_EQ(eg.denied_packets, 3u);
    EXPECT_EQ(eg.allowed_packets, 1u);
    EXPECT_EQ(in.dropped_by_reason[PBPF_REASON_RULE], 1u);
    EXPECT_EQ(in.dropped_by_reason[PBPF_REASON_DEFAULT], 0u);
    for (int r = 0; r < PBPF_DROP_REASON_SLOTS; ++r) {
        if (r == PBPF_REASON_RULE || r == PBPF_REASON_DEFAULT) continue;
        EXPECT_EQ(eg.dropped_by_reason[r], 0u) << "reason " << r;
        EXPECT_EQ(in.dropped_by_reason[r], 0u) << "reason " << r;
    }

    // The binding's slot saw the same packets; cgroup_skb counts without the 14-byte
    // Ethernet header.
    const auto b = slot_counters(kSlot);
    const uint64_t len = tcp4("8.8.8.8", 80).bytes().size() - 14;
    EXPECT_EQ(b.dir[PBPF_DIR_EGRESS].dropped_packets, 3u);
    EXPECT_EQ(b.dir[PBPF_DIR_EGRESS].dropped_bytes, 3 * len);
    EXPECT_EQ(b.dir[PBPF_DIR_EGRESS].passed_packets, 1u);
    EXPECT_EQ(b.dir[PBPF_DIR_EGRESS].passed_bytes, len);
    EXPECT_EQ(b.dir[PBPF_DIR_INGRESS].dropped_packets, 1u);
    EXPECT_EQ(b.dir[PBPF_DIR_INGRESS].passed_packets, 0u);
    // No other slot moved (slot 0 is "not counted" and never written).
    for (uint32_t other : {0u, kSlot - 1, kSlot + 1}) {
        const auto o = slot_counters(other);
        EXPECT_EQ(o.dir[0].passed_packets + o.dir[1].passed_packets + o.dir[0].dropped_packets +
                      o.dir[1].dropped_packets,
                  0u)
            << "slot " << other;
    }

    // The binding's drops by reason: the same split as the persona's, in its slot only.
    auto drops = binding_drops();
    ASSERT_EQ(drops.size(), 1u);
    ASSERT_EQ(drops.count(kSlot), 1u);
    const auto& br = drops[kSlot];
    for (int r = 0; r < PBPF_DROP_REASON_SLOTS; ++r) {
        EXPECT_EQ(br[PBPF_DIR_EGRESS][r], eg.dropped_by_reason[r]) << "reason " << r;
        EXPECT_EQ(br[PBPF_DIR_INGRESS][r], in.dropped_by_reason[r]) << "reason " << r;
    }

    // The established flow's next packet passes and counts as allowed in both places.
    EXPECT_EQ(run(Prog::Egress, tcp4("10.2.3.4", 443)), 1u);
    EXPECT_EQ(persona_counters(kWeb).dir[PBPF_DIR_EGRESS].allowed_packets, 2u);
    EXPECT_EQ(slot_counters(kSlot).dir[PBPF_DIR_EGRESS].passed_packets, 2u);
}

TEST_F(DropCounters, MissingPolicyCountsAsNoPolicy) {
    ASSERT_TRUE(bind_cgroup(skel_.get(), self_cgroup_, kNoPolicy, kSlot));
    EXPECT_EQ(run(Prog::Egress, tcp4("10.2.3.4", 443)), 0u);
    const auto c = persona_counters(kNoPolicy);
    EXPECT_EQ(c.dir[PBPF_DIR_EGRESS].dropped_by_reason[PBPF_REASON_NO_POLICY], 1u) << describe(c);
    EXPECT_EQ(c.dir[PBPF_DIR_EGRESS].denied_packets, 1u);
    EXPECT_EQ(slot_counters(kSlot).dir[PBPF_DIR_EGRESS].dropped_packets, 1u);
    EXPECT_EQ(binding_drops()[kSlot][PBPF_DIR_EGRESS][PBPF_REASON_NO_POLICY], 1u);
}

TEST_F(DropCounters, BindingDropsCountOnAndClearPerSlot) {
    ASSERT_TRUE(bind_cgroup(skel_.get(), self_cgroup_, kWeb, kSlot));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(run(Prog::Egress, tcp4("8.8.8.8", 80)), 0u);
    auto drops = binding_drops();
    EXPECT_EQ(drops[kSlot][PBPF_DIR_EGRESS][PBPF_REASON_DEFAULT], 5u);

    // The slot's next owner starts from nothing; other slots keep theirs.
    const int fd = bpf_map__fd(skel_->maps.pbpf_binding_drops);
    ASSERT_TRUE(bind_cgroup(skel_.get(), self_cgroup_, kWeb, kSlot + 1));
    EXPECT_EQ(run(Prog::Egress, tcp4("8.8.8.8", 80)), 0u);
    ASSERT_TRUE(clear_binding_drops(fd, kSlot));
    drops = binding_drops();
    EXPECT_EQ(drops.count(kSlot), 0u);
    EXPECT_EQ(drops[kSlot + 1][PBPF_DIR_EGRESS][PBPF_REASON_DEFAULT], 1u);
    // Clearing a slot without keys is fine.
    EXPECT_TRUE(clear_binding_drops(fd, kSlot));
}

TEST_F(DropCounters, BindingWithoutSlotIsNotCountedPerBinding) {
    ASSERT_TRUE(bind_cgroup(skel_.get(), self_cgroup_, kWeb, 0));
    EXPECT_EQ(run(Prog::Egress, tcp4("8.8.8.8", 80)), 0u);
    EXPECT_EQ(persona_counters(kWeb).dir[PBPF_DIR_EGRESS].dropped_by_reason[PBPF_REASON_DEFAULT],
              1u);
    const auto z = slot_counters(0);
    EXPECT_EQ(z.dir[PBPF_DIR_EGRESS].dropped_packets, 0u);
}

}  // namespace
}  // namespace pbpf::test
