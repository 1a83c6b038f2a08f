// Binding inheritance through real cgroups (nearest bound ancestor, resolve cache and its
// epoch) and the atomic flip of a persona's policy map, on the real skeleton.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include "maps/policy_map.h"
#include "tests/bpf/cgroup_util.h"
#include "tests/bpf/persona_fixture.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

constexpr uint32_t kPass = 1;
constexpr uint32_t kDrop = 0;
constexpr uint32_t kAllowAll = 7;
constexpr uint32_t kDenyAll = 8;

class KernelFixture : public ::testing::Test {
  protected:
    void SetUp() override {
        PBPF_REQUIRE_ROOT();
        auto skel = load_persona_skeleton();
        if (!skel) PBPF_KERNEL_UNAVAILABLE(skel.error().what());
        skel_ = std::move(skel.value());
        ASSERT_TRUE(install_policy(skel_.get(), kAllowAll, uniform_policy(PBPF_VERDICT_ALLOW, 1)));
        ASSERT_TRUE(install_policy(skel_.get(), kDenyAll, uniform_policy(PBPF_VERDICT_DENY, 1)));
    }

    uint32_t egress(const Packet& p) {
        auto r = run_prog(skel_.get(), Prog::Egress, p.bytes());
        EXPECT_TRUE(r) << r.error().what();
        return r ? r->retval : 0xffffffff;
    }

    uint64_t denied(uint32_t persona_id) {
        auto c = counters_of(skel_.get(), persona_id);
        EXPECT_TRUE(c);
        return c ? c->dir[PBPF_DIR_EGRESS].denied_packets : 0;
    }

    Skeleton skel_;
    const Packet packet_ = Packet().ipv4("192.168.1.10", "10.0.0.1").tcp(40000, 80);
};

class Inheritance : public KernelFixture {
  protected:
    void SetUp() override {
        KernelFixture::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        auto made = tree_.create({"a", "b"});
        if (!made) PBPF_KERNEL_UNAVAILABLE("cgroup tree: " + made.error().what());
        for (size_t i = 0; i < tree_.levels(); ++i) {
            auto id = cgroup_id(tree_.path(i));
            ASSERT_TRUE(id);
            ids_.push_back(*id);
        }
        auto entered = tree_.enter(tree_.path(2));
        if (!entered) PBPF_KERNEL_UNAVAILABLE("move into test cgroup: " + entered.error().what());
    }

    // Moves back out and removes the tree even when a check above failed.
    TestCgroupTree tree_;
    std::vector<uint64_t> ids_;  // top, a, b
};

TEST_F(Inheritance, ChildGetsNearestBoundAncestorAndCacheFollowsEpoch) {
    const uint64_t top = ids_[0], a = ids_[1], b = ids_[2];
    const persona* s = skel_.get();

    // Nothing bound: b's packets pass and "none" is cached for b.
    EXPECT_EQ(egress(packet_), kPass);

    // Bind a (b's parent): b inherits deny-all.
    ASSERT_TRUE(bind_cgroup(s, a, kDenyAll));
    auto epoch = bump_binding_epoch(s);
    ASSERT_TRUE(epoch);
    const uint64_t denied_before = denied(kDenyAll);
    EXPECT_EQ(egress(packet_), kDrop) << "b did not inherit a's persona";
    EXPECT_EQ(denied(kDenyAll), denied_before + 1);
    pbpf_resolved cached{};
    ASSERT_EQ(bpf_map__lookup_elem(skel_->maps.pbpf_resolve_cache, &b, sizeof b, &cached,
                                   sizeof cached, 0),
              0);
    EXPECT_EQ(cached.persona_id, kDenyAll);
    EXPECT_EQ(cached.epoch, *epoch);

    // Bind b itself: its own binding wins over a's.
    ASSERT_TRUE(bind_cgroup(s, b, kAllowAll));
    ASSERT_TRUE(bump_binding_epoch(s));
    EXPECT_EQ(egress(packet_), kPass);

    // Unbind b: a's persona again, through a fresh walk.
    ASSERT_TRUE(unbind_cgroup(s, b));
    ASSERT_TRUE(bump_binding_epoch(s));
    EXPECT_EQ(egress(packet_), kDrop);

    // Unbind a without bumping the epoch: the cached inherited result is still used. This
    // is why the binder must bump after every change.
    ASSERT_TRUE(unbind_cgroup(s, a));
    EXPECT_EQ(egress(packet_), kDrop) << "cache entry was not used while its epoch matched";
    ASSERT_TRUE(bump_binding_epoch(s));
    EXPECT_EQ(egress(packet_), kPass);

    // Two levels up: bind the top of the test tree.
    ASSERT_TRUE(bind_cgroup(s, top, kDenyAll));
    ASSERT_TRUE(bump_binding_epoch(s));
    EXPECT_EQ(egress(packet_), kDrop) << "b did not inherit from its grandparent";
    // a bound too: the nearer ancestor wins.
    ASSERT_TRUE(bind_cgroup(s, a, kAllowAll));
    ASSERT_TRUE(bump_binding_epoch(s));
    EXPECT_EQ(egress(packet_), kPass) << "the nearest bound ancestor must win";
}

// Repeated runs of an inherited allow keep passing (resolve cache hits). Speed is measured
// by bench/persona_bench, not here.
TEST_F(Inheritance, RepeatedRunsOfInheritedBindingPass) {
    ASSERT_TRUE(bind_cgroup(skel_.get(), ids_[1], kAllowAll));
    ASSERT_TRUE(bump_binding_epoch(skel_.get()));
    auto r = run_prog(skel_.get(), Prog::Egress, packet_.bytes(), 1000);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->retval, kPass);
}

using PolicyFlip = KernelFixture;

TEST_F(PolicyFlip, ReplacingTheInnerTrieSwitchesVerdicts) {
    auto self = self_cgroup_path();
    auto mount = cgroup2_mount();
    ASSERT_TRUE(self && mount);
    auto id = cgroup_id(*mount + (*self == "/" ? "" : *self));
    ASSERT_TRUE(id);
    constexpr uint32_t kFlipped = 9;
    ASSERT_TRUE(bind_cgroup(skel_.get(), *id, kFlipped));

    // Generation 1: allow all.
    PersonaImage allow{.name = "flip"};
    allow.entries = uniform_policy(PBPF_VERDICT_ALLOW, 1);
    auto gen1 = build_policy_map(allow);
    ASSERT_TRUE(gen1) << gen1.error().what();
    const int outer = bpf_map__fd(skel_->maps.pbpf_policies);
    uint32_t fd = static_cast<uint32_t>(gen1->get());
    ASSERT_EQ(bpf_map_update_elem(outer, &kFlipped, &fd, BPF_ANY), 0);
    EXPECT_EQ(egress(packet_), kPass);

    // Generation 2, built completely before the one update that flips to it.
    PersonaImage deny{.name = "flip"};
    deny.entries = uniform_policy(PBPF_VERDICT_DENY, 1);
    auto gen2 = build_policy_map(deny);
    ASSERT_TRUE(gen2);
    fd = static_cast<uint32_t>(gen2->get());
    ASSERT_EQ(bpf_map_update_elem(outer, &kFlipped, &fd, BPF_ANY), 0);
    // The flow passed under generation 1 is tracked: it keeps its verdict until the
    // policy epoch says the rules changed (the manager bumps it right after the flip).
    EXPECT_EQ(egress(packet_), kPass);
    ASSERT_TRUE(bump_policy_epoch(skel_.get()));
    EXPECT_EQ(egress(packet_), kDrop);

    // And back: the old generation is intact and usable again.
    fd = static_cast<uint32_t>(gen1->get());
    ASSERT_EQ(bpf_map_update_elem(outer, &kFlipped, &fd, BPF_ANY), 0);
    ASSERT_TRUE(bump_policy_epoch(skel_.get()));
    EXPECT_EQ(egress(packet_), kPass);

    // A map of another size is accepted (since 5.10 the kernel compares only type,
    // key/value size and flags of hash inner maps), so personas get maps sized to them.
    auto small = create_policy_map(64, "pbpf_small");
    ASSERT_TRUE(small);
    ASSERT_TRUE(write_policy(small->get(), deny));
    fd = static_cast<uint32_t>(small->get());
    ASSERT_EQ(bpf_map_update_elem(outer, &kFlipped, &fd, BPF_ANY), 0);
    ASSERT_TRUE(bump_policy_epoch(skel_.get()));
    EXPECT_EQ(egress(packet_), kDrop);

    // A map not shaped like the template (here: a preallocated hash) is refused: nothing
    // enforced changes.
    const int hash = bpf_map_create(BPF_MAP_TYPE_HASH, "pbpf_wrong", sizeof(pbpf_policy_key),
                                    sizeof(pbpf_policy_value), 16, nullptr);
    ASSERT_GE(hash, 0);
    Fd hash_fd(hash);
    fd = static_cast<uint32_t>(hash);
    EXPECT_NE(bpf_map_update_elem(outer, &kFlipped, &fd, BPF_ANY), 0);
    EXPECT_EQ(egress(packet_), kDrop);
}

}  // namespace
}  // namespace pbpf::test
